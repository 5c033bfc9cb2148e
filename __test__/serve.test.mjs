// `weather-cache serve`: the drone proxy, as a real process on an ephemeral port.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import net from 'node:net'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

import { parsePrometheus } from './prometheus.mjs'
import { API_KEY, answer, startUpstream } from './upstream.mjs'

const bin = fileURLToPath(new URL('../bin/weather-cache.mjs', import.meta.url))

/** Starts `weather-cache serve` and resolves once it says where it listens. */
function startServe(args, env = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, 'serve', '--port', '0', ...args], { env: { ...process.env, ...env } })
    let stdout = ''
    let stderr = ''
    const exited = new Promise((done) => child.on('exit', (code, signal) => done({ code, signal, stdout, stderr })))
    child.stdout.on('data', (d) => {
      stdout += d
      const match = /listening on (http:\/\/[^ ]+)/.exec(stdout)
      if (match) resolve({ url: match[1], child, exited, output: () => stdout })
    })
    child.stderr.on('data', (d) => (stderr += d))
    exited.then(({ code }) => reject(new Error(`serve exited (${code}) before listening:\n${stdout}\n${stderr}`)))
  })
}

async function withProxy(behaviour, fn, args = []) {
  const upstream = await startUpstream(behaviour)
  const proxy = await startServe(['--upstream', upstream.url, '--api-key', API_KEY, ...args])
  try {
    await fn({ upstream, proxy, get: (path, init) => fetch(`${proxy.url}${path}`, init) })
  } finally {
    proxy.child.kill('SIGKILL')
    await proxy.exited
    await upstream.close()
  }
}

test('200: the weather, its source and age; units pick `temp`', () =>
  withProxy(answer.fixed(20.6), async ({ get, upstream }) => {
    const first = await get('/v1/weather?lat=48.8566&lon=2.3522&user=drone-7&units=imperial')
    assert.equal(first.status, 200)
    assert.match(first.headers.get('content-type'), /application\/json/)
    const body = await first.json()
    assert.deepEqual(Object.keys(body).sort(), ['ageMs', 'condition', 'fetchedAt', 'source', 'temp', 'tempC', 'tempF', 'units'])
    assert.deepEqual([body.condition, body.tempC, body.tempF, body.temp, body.units, body.source], ['Clouds', 21, 69, 69, 'imperial', 'network'])
    const second = await (await get('/v1/weather?lat=48.86&lon=2.35')).json()
    assert.deepEqual([second.source, second.temp, second.units], ['cache', 21, 'metric'])
    assert.equal(upstream.count, 1)
  }))

test('400 for bad parameters, 414 for a huge query, 404 and 405', () =>
  withProxy(answer.weather, async ({ get, upstream }) => {
    const cases = [
      ['/v1/weather?lon=2', 400, 'ERR_INVALID_ARG_TYPE'],
      ['/v1/weather?lat=abc&lon=2', 400, 'ERR_INVALID_ARG_VALUE'],
      ['/v1/weather?lat=&lon=2', 400, 'ERR_INVALID_ARG_VALUE'],
      ['/v1/weather?lat=91&lon=2', 400, 'ERR_OUT_OF_RANGE'],
      ['/v1/weather?lat=1&lon=2&units=kelvin', 400, 'ERR_INVALID_ARG_VALUE'],
      ['/v1/weather?lat=1&lon=2&user=', 400, 'ERR_INVALID_ARG_VALUE'],
      [`/v1/weather?lat=1&lon=2&user=${'x'.repeat(300)}`, 400, 'ERR_INVALID_ARG_VALUE'],
      [`/v1/weather?lat=1&lon=2&pad=${'x'.repeat(2100)}`, 414, 'ERR_QUERY_TOO_LONG'],
      ['/v2/weather', 404, 'ERR_NOT_FOUND'],
    ]
    for (const [path, status, code] of cases) {
      const response = await get(path)
      assert.equal(response.status, status, path.slice(0, 60))
      const body = await response.json()
      assert.equal(body.error.code, code, path.slice(0, 60))
      assert.equal(typeof body.error.message, 'string')
    }
    const post = await get('/v1/weather?lat=1&lon=2', { method: 'POST' })
    assert.equal(post.status, 405)
    assert.equal(post.headers.get('allow'), 'GET, HEAD')
    assert.equal(upstream.count, 0, 'no bad request reached upstream')
  }))

test('503 with Retry-After when rate limited, 503 when the upstream fails', () =>
  withProxy(answer.rateLimited(120), async ({ get, upstream }) => {
    const limited = await get('/v1/weather?lat=1&lon=1')
    assert.equal(limited.status, 503)
    assert.equal(limited.headers.get('retry-after'), '120')
    assert.equal((await limited.json()).error.code, 'ERR_RATE_LIMITED')
    upstream.behave(answer.status(500))
    const failing = await get('/v1/weather?lat=1&lon=1') // still cooling down: no upstream call
    assert.equal(failing.status, 503)
    assert.equal(upstream.count, 1)
  }))

test('503 for an upstream error with nothing cached', () =>
  withProxy(answer.status(502), async ({ get }) => {
    const response = await get('/v1/weather?lat=10&lon=10')
    assert.equal(response.status, 503)
    assert.equal(response.headers.get('retry-after'), null)
    assert.equal((await response.json()).error.code, 'ERR_UPSTREAM_STATUS')
  }))

test('/healthz and /metrics (valid Prometheus text)', () =>
  withProxy(answer.weather, async ({ get }) => {
    assert.equal(await (await get('/healthz')).text(), 'ok\n')
    await get('/v1/weather?lat=1&lon=1')
    await get('/v1/weather?lat=1&lon=1')
    const metrics = await get('/metrics')
    assert.match(metrics.headers.get('content-type'), /^text\/plain; version=0\.0\.4/)
    const values = parsePrometheus(await metrics.text())
    assert.equal(values.get('weather_cache_requests_total'), 2)
    assert.equal(values.get('weather_cache_upstream_requests_total'), 1)
  }))

test('garbage on the socket gets a 400 and the server keeps serving', () =>
  withProxy(answer.weather, async ({ proxy, get }) => {
    const { port } = new URL(proxy.url)
    const reply = await new Promise((resolve) => {
      const socket = net.connect(Number(port), '127.0.0.1', () => socket.write('NOT HTTP AT ALL\r\n\r\n\x00\xff'))
      let data = ''
      socket.on('data', (d) => (data += d))
      socket.on('close', () => resolve(data))
      socket.on('error', () => resolve(data))
    })
    assert.match(reply, /^HTTP\/1\.1 400/)
    assert.equal((await get('/healthz')).status, 200)
  }))

test('SIGTERM: requests in flight finish, then the process exits 0', async () => {
  const upstream = await startUpstream(answer.delayed(400))
  const proxy = await startServe(['--upstream', upstream.url, '--api-key', API_KEY])
  try {
    const inFlight = fetch(`${proxy.url}/v1/weather?lat=5&lon=5`)
    while (upstream.count === 0) await new Promise((resolve) => setTimeout(resolve, 5))
    proxy.child.kill('SIGTERM')
    const response = await inFlight
    assert.equal(response.status, 200)
    assert.equal((await response.json()).source, 'network')
    const { code, signal } = await proxy.exited
    assert.deepEqual([code, signal], [0, null])
    assert.match(proxy.output(), /SIGTERM, finishing requests in flight/)
    await assert.rejects(fetch(`${proxy.url}/healthz`), 'no longer accepting')
  } finally {
    proxy.child.kill('SIGKILL')
    await upstream.close()
  }
})

test('bad flags and bad options exit 2 with a message', async () => {
  for (const args of [['--port', 'abc'], ['--proximity-km', '0.1'], ['--preset', 'turbo'], ['--nope'], ['--budget-per-minute', '0'], ['--redis', 'http://x']]) {
    const child = spawn(process.execPath, [bin, 'serve', ...args])
    let stderr = ''
    child.stderr.on('data', (d) => (stderr += d))
    const code = await new Promise((resolve) => child.on('exit', resolve))
    assert.equal(code, 2, args.join(' '))
    assert.match(stderr, /^weather-cache: /, args.join(' '))
  }
})
