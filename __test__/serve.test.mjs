// `weather-cache serve`: the drone proxy, as a real process on an ephemeral port.
import assert from 'node:assert/strict'
import net from 'node:net'
import { test } from 'node:test'

import { redisServerInstalled, startRedis } from '../lib/local-redis.mjs'
import { parsePrometheus } from './prometheus.mjs'
import { port, program, rawClient, spawnServe, startServe, withProxy } from './serve-process.mjs'
import { API_KEY, answer, startUpstream } from './upstream.mjs'

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

const noRedis = !redisServerInstalled() && 'redis-server is not installed'
if (noRedis && process.env.CI) throw new Error('CI is set but redis-server is missing: .ci/run must install it')

// A day's budget rolls over at UTC midnight: not within the test's few seconds of it.
const nearMidnight = Date.now() % 86_400_000 > 86_400_000 - 30_000 && 'too close to UTC midnight for a day budget'

test('--redis and --budget-per-day: two proxies share entries and one budget', { skip: noRedis || nearMidnight }, async () => {
  const redis = await startRedis()
  const upstream = await startUpstream(answer.fixed(20.6, 'Clouds'))
  const args = ['--upstream', upstream.url, '--redis', redis.url, '--budget-per-day', '2']
  const [a, b] = [await startServe(args, { OPEN_WEATHER_API_KEY: API_KEY }), await startServe(args, { OPEN_WEATHER_API_KEY: API_KEY })]
  try {
    assert.equal((await (await fetch(`${a.url}/v1/weather?lat=48.8566&lon=2.3522`)).json()).source, 'network')
    // B, 3 km away, is answered from Redis once A's write-through lands.
    let fromB
    for (let tries = 0; tries < 100 && fromB?.source !== 'cache'; tries++) {
      fromB = await (await fetch(`${b.url}/v1/weather?lat=48.8836&lon=2.3522`)).json()
      if (fromB.source !== 'cache') await new Promise((resolve) => setTimeout(resolve, 20))
    }
    assert.deepEqual([fromB.source, fromB.tempC, upstream.count], ['cache', 21, 1])
    // The budget is the pair's: one more call anywhere, then 503 with Retry-After. (A day's
    // budget: a minute's could roll over mid-test.)
    assert.equal((await fetch(`${b.url}/v1/weather?lat=-33.9&lon=151.2`)).status, 200)
    const refused = await fetch(`${a.url}/v1/weather?lat=35.68&lon=139.69`)
    assert.equal(refused.status, 503)
    assert.equal((await refused.json()).error.code, 'ERR_BUDGET_EXHAUSTED')
    assert.ok(Number(refused.headers.get('retry-after')) >= 1)
    assert.equal(upstream.count, 2)
  } finally {
    for (const proxy of [a, b]) proxy.child.kill('SIGKILL')
    await Promise.all([a.exited, b.exited])
    await upstream.close()
    await redis.stop()
  }
})

test('bad flags and bad options exit 2 with a message', async () => {
  for (const args of [['--port', 'abc'], ['--proximity-km', '0.1'], ['--preset', 'turbo'], ['--nope'], ['--budget-per-minute', '0'], ['--redis', 'http://x'], ['--api-key-file', '/nonexistent/key'], ['--token', 'a', '--token-file', 'b'], ['--threads', '0'], ['--max-connections', 'x'], ['--providers', 'darksky'], ['--access-log', '/nonexistent/dir/access.log'], ['--providers', 'met-norway'], ['--met-norway-user-agent', 'x']]) {
    const child = spawnServe(args)
    let stderr = ''
    child.stderr.on('data', (d) => (stderr += d))
    const code = await new Promise((resolve) => child.on('exit', resolve))
    assert.equal(code, 2, args.join(' '))
    assert.match(stderr, new RegExp(`^${program}: `), args.join(' '))
  }
})

// Issue 12: the proxy in Rust, closed to strangers and hard to hold open.

test('a half-open client is cut off by the header timeout, and SIGTERM with one present is prompt', async () => {
  const upstream = await startUpstream(answer.weather)
  const proxy = await startServe(['--upstream', upstream.url, '--api-key', API_KEY, '--header-timeout', '500'])
  try {
    const halfOpen = rawClient(port(proxy), 'GET /v1/weather?lat=1&lon=1 HTTP/1.1\r\nHost: x\r\n')
    const { afterMs } = await halfOpen.closed
    assert.ok(afterMs >= 400 && afterMs < 2_000, `closed after ${afterMs} ms`)
    // Another one, then SIGTERM: nothing is in flight, so shutdown does not wait for it.
    const lingering = rawClient(port(proxy), 'GET /healthz HTTP/1.1\r\nHo')
    await new Promise((resolve) => setTimeout(resolve, 100))
    const started = Date.now()
    proxy.child.kill('SIGTERM')
    const { code } = await proxy.exited
    assert.equal(code, 0)
    assert.ok(Date.now() - started < 1_000, `SIGTERM took ${Date.now() - started} ms`)
    await lingering.closed
  } finally {
    proxy.child.kill('SIGKILL')
    await upstream.close()
  }
})

test('idle keep-alive connections are closed after the idle timeout, half-way into their next head too', () =>
  withProxy(answer.weather, async ({ proxy }) => {
    const client = rawClient(port(proxy), 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n')
    // Another one answered, then starting a next head it never finishes.
    const halfway = rawClient(port(proxy), 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHo')
    for (const { data, afterMs } of [await client.closed, await halfway.closed]) {
      assert.match(data, /^HTTP\/1\.1 200/)
      assert.ok(afterMs >= 250 && afterMs < 2_000, `closed after ${afterMs} ms`)
    }
  }, ['--idle-timeout', '300']))

test('1,000 concurrent keep-alive connections are answered', () =>
  withProxy(answer.weather, async ({ proxy, upstream }) => {
    const { Agent } = await import('node:http')
    const agent = new Agent({ keepAlive: true, maxSockets: 1000 })
    const { get } = await import('node:http')
    const ask = (i) =>
      new Promise((resolve, reject) => {
        get(`${proxy.url}/v1/weather?lat=${40 + (i % 10) * 0.001}&lon=-3&user=d${i}`, { agent }, (res) => {
          let body = ''
          res.on('data', (d) => (body += d))
          res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(body) }))
        }).on('error', reject)
      })
    const answers = await Promise.all(Array.from({ length: 1000 }, (_, i) => ask(i)))
    assert.ok(answers.every((a) => a.status === 200 && typeof a.body.tempC === 'number'))
    assert.equal(upstream.count, 1)
    agent.destroy()
  }, ['--max-connections-per-ip', '1000'])) // all from 127.0.0.1 (256 by default)

test('the connection limit: beyond it, 503 at once and a close', () =>
  withProxy(answer.weather, async ({ proxy, get }) => {
    const held = Array.from({ length: 3 }, () => rawClient(port(proxy)))
    await new Promise((resolve) => setTimeout(resolve, 100))
    const refused = rawClient(port(proxy))
    const { data, afterMs } = await refused.closed
    assert.match(data, /^HTTP\/1\.1 503/)
    assert.match(data, /ERR_TOO_MANY_CONNECTIONS/)
    assert.ok(afterMs < 1_000)
    for (const h of held) h.socket.destroy()
    await new Promise((resolve) => setTimeout(resolve, 100))
    assert.equal((await get('/healthz')).status, 200, 'slots free again')
    const metrics = await (await get('/metrics')).text()
    assert.match(metrics, /^weather_cache_proxy_refused_connections_total\{reason="limit"\} 1$/m)
  }, ['--max-connections', '3']))

test('a token: 401 without it (WWW-Authenticate), 200 with it; /healthz stays open; --metrics-public', async () => {
  const { mkdtempSync, writeFileSync } = await import('node:fs')
  const { tmpdir } = await import('node:os')
  const dir = mkdtempSync(`${tmpdir()}/weather-cache-token-`)
  writeFileSync(`${dir}/token`, 's3cret-t0ken\n')
  await withProxy(answer.weather, async ({ get }) => {
    for (const path of ['/v1/weather?lat=1&lon=1', '/metrics']) {
      const denied = await get(path)
      assert.equal(denied.status, 401, path)
      assert.equal(denied.headers.get('www-authenticate'), 'Bearer realm="weather-cache"')
      assert.equal((await denied.json()).error.code, 'ERR_UNAUTHORIZED')
      assert.equal((await get(path, { headers: { Authorization: 'Bearer wrong' } })).status, 401)
      assert.equal((await get(path, { headers: { Authorization: 'Bearer s3cret-t0ken' } })).status, 200, path)
    }
    assert.equal((await get('/healthz')).status, 200)
  }, ['--token-file', `${dir}/token`])
  await withProxy(answer.weather, async ({ get }) => {
    assert.equal((await get('/metrics')).status, 200)
    assert.equal((await get('/v1/weather?lat=1&lon=1')).status, 401)
  }, ['--token-file', `${dir}/token`, '--metrics-public'])
})

test('HTTP caching: max-age is the freshness left, an ETag per entry, If-None-Match gets 304', () =>
  withProxy(answer.weather, async ({ get, upstream }) => {
    const first = await get('/v1/weather?lat=10&lon=10&user=d1')
    const etag = first.headers.get('etag')
    assert.match(etag, /^W\/"[0-9a-f]+-[0-9a-f]+-m"$/)
    const maxAge = Number(/max-age=(\d+)/.exec(first.headers.get('cache-control'))[1])
    assert.ok(maxAge > 590 && maxAge <= 600, `max-age=${maxAge}`)
    const again = await get('/v1/weather?lat=10.001&lon=10&user=d1', { headers: { 'If-None-Match': etag } })
    assert.equal(again.status, 304)
    assert.equal(await again.text(), '')
    assert.equal(again.headers.get('etag'), etag)
    const imperial = await get('/v1/weather?lat=10&lon=10&units=imperial', { headers: { 'If-None-Match': etag } })
    assert.equal(imperial.status, 200, 'another representation')
    assert.equal(upstream.count, 1)
    const metrics = await (await get('/metrics')).text()
    assert.match(metrics, /^weather_cache_proxy_not_modified_total 1$/m)
  }))

test('--api-key-file: the key from a file; --api-key still works but warns; no secret in any output', async () => {
  const { mkdtempSync, writeFileSync } = await import('node:fs')
  const { tmpdir } = await import('node:os')
  const dir = mkdtempSync(`${tmpdir()}/weather-cache-key-`)
  writeFileSync(`${dir}/key`, `${API_KEY}\n`)
  const upstream = await startUpstream(answer.weather)
  const fromFile = await startServe(['--upstream', upstream.url, '--api-key-file', `${dir}/key`, '--access-log', `${dir}/access.log`])
  try {
    const response = await fetch(`${fromFile.url}/v1/weather?lat=1&lon=1&user=secret-user`)
    assert.equal(response.status, 200)
    assert.equal(upstream.requests[0].appid, API_KEY)
  } finally {
    fromFile.child.kill('SIGTERM')
    await fromFile.exited
  }
  const { readFileSync } = await import('node:fs')
  const log = readFileSync(`${dir}/access.log`, 'utf8').trim().split('\n').map((l) => JSON.parse(l))
  assert.deepEqual(Object.keys(log[0]).sort(), ['bytes', 'client', 'clientName', 'durationMs', 'method', 'path', 'protocol', 'requestId', 'source', 'status', 'time'])
  assert.deepEqual([log[0].client, log[0].clientName, log[0].protocol], ['127.0.0.1', null, 'HTTP/1.1'])
  assert.match(log[0].requestId, /^[0-9a-f]{20}$/)
  assert.deepEqual([log[0].path, log[0].status, log[0].source], ['/v1/weather', 200, 'network'])
  const text = readFileSync(`${dir}/access.log`, 'utf8')
  for (const secret of [API_KEY, 'secret-user', 'lat=']) assert.ok(!text.includes(secret), secret)
  const inArgv = await startServe(['--upstream', upstream.url, '--api-key', API_KEY])
  try {
    assert.equal((await fetch(`${inArgv.url}/v1/weather?lat=2&lon=2`)).status, 200)
  } finally {
    inArgv.child.kill('SIGKILL')
    const { stderr } = await inArgv.exited
    assert.match(stderr, /"level":40,.*"msg":"--api-key puts the key in argv/)
    assert.ok(!stderr.includes(API_KEY))
    await upstream.close()
  }
})

test('a non-loopback --host without a token warns', async () => {
  const upstream = await startUpstream(answer.weather)
  const proxy = await startServe(['--upstream', upstream.url, '--host', '0.0.0.0'], { OPEN_WEATHER_API_KEY: API_KEY })
  proxy.child.kill('SIGKILL')
  const { stderr } = await proxy.exited
  assert.match(stderr, /"level":40,.*"msg":"listening on 0\.0\.0\.0 without a token/)
  await upstream.close()
})

test('431 with a JSON error for too many headers or too big a head; garbage on one socket leaves the others serving', () =>
  withProxy(answer.weather, async ({ proxy, get, upstream }) => {
    const many = Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`x-h${i}`, 'v']))
    const big = { 'x-big': 'b'.repeat(17 * 1024) }
    for (const headers of [many, big]) {
      const res = await get('/v1/weather?lat=1&lon=1', { headers })
      assert.equal(res.status, 431)
      assert.equal((await res.json()).error.code, 'ERR_HEADERS_TOO_LARGE')
    }
    // Past what hyper buffers: still refused (by hyper, without a body).
    assert.equal((await get('/healthz', { headers: { 'x-huge': 'h'.repeat(70 * 1024) } })).status, 431)
    // Just under both limits: answered.
    const fifty = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`x-h${i}`, 'v']))
    assert.equal((await get('/healthz', { headers: { ...fifty, 'x-big': 'b'.repeat(15 * 1024) } })).status, 200)
    // Counted like every answer of ours: two 431s, the 200, and this request itself.
    const metrics = await (await get('/metrics')).text()
    assert.match(metrics, /^weather_cache_proxy_requests_total 4$/m)
    assert.equal(upstream.count, 0)
    // A keep-alive client mid-conversation, garbage on another socket, then the first goes on.
    const steady = rawClient(port(proxy), 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n')
    await new Promise((resolve) => setTimeout(resolve, 100))
    const garbage = rawClient(port(proxy), '\x00\x01\x02 NOT HTTP\r\n\r\n')
    assert.match((await garbage.closed).data, /^HTTP\/1\.1 400/)
    steady.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    const { data } = await steady.closed
    assert.equal(data.match(/HTTP\/1\.1 200/g).length, 2, 'both requests of the steady client answered')
  }))

test('--providers: a 429 from OpenWeather is answered by Open-Meteo, not a 503', async () => {
  const om = await startUpstream(answer.fixed(7.4, 'Rain'))
  try {
    await withProxy(answer.rateLimited(60), async ({ upstream, get }) => {
      const res = await get('/v1/weather?lat=48.85&lon=2.35')
      assert.equal(res.status, 200)
      const body = await res.json()
      assert.deepEqual([body.condition, body.tempC, body.source], ['Rain', 7, 'network'])
      assert.deepEqual([upstream.count, om.count], [1, 1])
      const metrics = await (await get('/metrics')).text()
      assert.match(metrics, /^weather_cache_upstream_requests_total\{provider="open-meteo"\} 1$/m)
    }, ['--providers', 'openweather,open-meteo', '--open-meteo-url', om.url])
  } finally {
    await om.close()
  }
})

// Issue 21: defects a review found by probing a running proxy. Each test failed on the main of
// the time (see the issue); they assert what a client or an operator sees.

test('defect 1: --access-log - survives a full pipe: every line arrives, whole, once the reader resumes', async () => {
  await withProxy(answer.weather, async ({ proxy, get }) => {
    // The reader stops: the pipe (64 KiB) and Node's buffer fill long before 3,000 lines.
    proxy.child.stdout.pause()
    const total = 3_000
    for (let i = 0; i < total; i += 50) {
      await Promise.all(Array.from({ length: 50 }, () => get('/healthz').then((r) => r.text())))
    }
    proxy.child.stdout.resume()
    const lines = () => proxy.output().split('\n').filter((l) => l.startsWith('{'))
    for (let waited = 0; lines().length < total && waited < 10_000; waited += 20) await new Promise((r) => setTimeout(r, 20))
    const written = lines()
    assert.equal(written.length, total, `${written.length} of ${total} lines written`)
    for (const line of written) assert.equal(JSON.parse(line).path, '/healthz')
    const metrics = await (await get('/metrics')).text()
    assert.match(metrics, /^weather_cache_proxy_access_log_dropped_total 0$/m)
  }, ['--access-log', '-'])
})

test('defect 2: an empty token from any source exits 2 instead of turning auth off', async () => {
  const { mkdtempSync, writeFileSync } = await import('node:fs')
  const { tmpdir } = await import('node:os')
  const dir = mkdtempSync(`${tmpdir()}/weather-cache-empty-token-`)
  writeFileSync(`${dir}/empty`, '\n')
  for (const [args, env] of [[['--token', ''], {}], [['--token', '   '], {}], [[], { WEATHER_CACHE_TOKEN: '' }], [['--token-file', `${dir}/empty`], {}]]) {
    const child = spawnServe(['--port', '0', ...args], { env: { ...process.env, OPEN_WEATHER_API_KEY: API_KEY, ...env } })
    let stderr = ''
    child.stderr.on('data', (d) => (stderr += d))
    // A proxy that started without auth would never exit by itself.
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000)
    const code = await new Promise((resolve) => child.on('exit', resolve))
    clearTimeout(timer)
    assert.equal(code, 2, `${JSON.stringify(args)} ${JSON.stringify(env)}`)
    assert.match(stderr, /empty/)
  }
  // From code: listen({ token: '' }) rejects.
  const { WeatherService } = await import('../main.js')
  const service = new WeatherService({ apiKey: API_KEY })
  try {
    await assert.rejects(service.listen({ port: 0, token: '' }), { code: 'ERR_INVALID_ARG_VALUE' })
  } finally {
    service.close()
  }
})

test('defect 3: Host is required (400) and must be a name the proxy serves (421); loopback names by default, --allowed-host adds', async () => {
  const { rawRequest } = await import('./serve-process.mjs')
  const asker = (proxy) => (host, path = '/v1/weather?lat=1&lon=1') =>
    rawRequest(port(proxy), `GET ${path} HTTP/1.1\r\n${host === null ? '' : `Host: ${host}\r\n`}Connection: close\r\n\r\n`)
  await withProxy(answer.weather, async ({ proxy, upstream }) => {
    const ask = asker(proxy)
    const missing = await ask(null)
    assert.equal(missing.status, 400, 'no Host')
    assert.equal(JSON.parse(missing.body).error.code, 'ERR_MISSING_HOST')
    for (const rebound of ['evil.example', 'evil.example:8080', '127.evil.example', 'localhost.evil.example']) {
      const refused = await ask(rebound)
      assert.equal(refused.status, 421, rebound)
      assert.equal(JSON.parse(refused.body).error.code, 'ERR_HOST_NOT_ALLOWED')
      assert.equal((await ask(rebound, '/v1/status')).status, 421, `${rebound} /v1/status`)
      assert.equal((await ask(rebound, '/metrics')).status, 421, `${rebound} /metrics`)
    }
    assert.equal(upstream.count, 0, 'no refused request spent the budget')
    for (const name of ['localhost', `localhost:${port(proxy)}`, 'LOCALHOST.', '127.0.0.1', `127.0.0.1:${port(proxy)}`, '[::1]:80']) {
      assert.equal((await ask(name)).status, 200, name)
    }
    // Liveness answers whatever the name (a load balancer's probe uses an address).
    assert.equal((await ask('evil.example', '/healthz')).status, 200)
  })
  await withProxy(answer.weather, async ({ proxy }) => {
    const ask = asker(proxy)
    for (const name of ['weather.example', 'WEATHER.example.:443', 'localhost']) assert.equal((await ask(name)).status, 200, name)
    assert.equal((await ask('other.example')).status, 421)
  }, ['--allowed-host', 'weather.example'])
})

test('defect 4: the status cookie is set by the server (HttpOnly, SameSite=Strict), holds no token, and opens the status routes only', async () => {
  const { mkdtempSync, writeFileSync } = await import('node:fs')
  const { tmpdir } = await import('node:os')
  const dir = mkdtempSync(`${tmpdir()}/weather-cache-cookie-`)
  writeFileSync(`${dir}/token`, 'c00kie-t0ken\n')
  await withProxy(answer.weather, async ({ get }) => {
    const login = await get('/login', { method: 'POST', body: new URLSearchParams({ token: 'c00kie-t0ken' }), redirect: 'manual' })
    assert.equal(login.status, 303)
    assert.equal(login.headers.get('location'), '/')
    const cookie = login.headers.get('set-cookie')
    assert.match(cookie, /; HttpOnly/)
    assert.match(cookie, /; SameSite=Strict/)
    assert.match(cookie, /; Path=\//)
    assert.doesNotMatch(cookie, /; Secure/, 'plain HTTP: a Secure cookie would never come back')
    assert.ok(!cookie.includes('c00kie-t0ken') && !cookie.includes(encodeURIComponent('c00kie-t0ken')), 'no token in the cookie')
    const pair = cookie.split(';')[0]
    assert.equal((await get('/', { headers: { cookie: pair } })).status, 200)
    assert.equal((await get('/v1/status', { headers: { cookie: pair } })).status, 200)
    assert.equal((await get('/v1/weather?lat=1&lon=1', { headers: { cookie: pair } })).status, 401, 'the cookie spends no budget')
    assert.equal((await get('/metrics', { headers: { cookie: pair } })).status, 401)
    // A wrong token gets the form again; the old client-side cookie (the raw token) opens nothing.
    const wrong = await get('/login', { method: 'POST', body: new URLSearchParams({ token: 'nope' }), redirect: 'manual' })
    assert.equal(wrong.status, 401)
    assert.equal(wrong.headers.get('set-cookie'), null)
    assert.equal((await get('/v1/status', { headers: { cookie: 'weather_cache_token=c00kie-t0ken' } })).status, 401)
    // The form posts to the server; the page has no script that could see the token.
    const form = await (await get('/')).text()
    assert.match(form, /<form[^>]+method="post"[^>]+action="\/login"/)
    assert.doesNotMatch(form, /document\.cookie/)
  }, ['--token-file', `${dir}/token`])
})

test('defect 5: the 401 login page has the real page\'s CSP, X-Frame-Options and Cache-Control: no-store', async () => {
  await withProxy(answer.weather, async ({ get }) => {
    const login = await get('/')
    assert.equal(login.status, 401)
    assert.match(login.headers.get('content-security-policy'), /default-src 'none'/)
    assert.match(login.headers.get('content-security-policy'), /frame-ancestors 'none'/)
    assert.equal(login.headers.get('x-frame-options'), 'DENY')
    assert.equal(login.headers.get('cache-control'), 'no-store')
  }, ['--token', 'frame-t0ken'])
})

test('defect 6: a half-sent head costs at most 40 KiB, and one address cannot take every connection', async () => {
  const { rssKiB, sleep } = await import('./serve-process.mjs')
  // 1,000 clients, each some way into a head it never finishes (spread over ten addresses): one
  // the proxy holds, and one past what it buffers.
  for (const size of [15_000, 60_000]) {
    await withProxy(answer.weather, async ({ proxy }) => {
      await sleep(200)
      const before = await rssKiB(proxy.child.pid)
      const clients = []
      for (let i = 0; i < 1_000; i++) {
        clients.push(rawClient(port(proxy), `GET /healthz HTTP/1.1\r\nHost: x\r\nx-pad: ${'a'.repeat(size)}`, { localAddress: `127.0.0.${10 + (i % 10)}` }))
        if (i % 100 === 99) await sleep(50)
      }
      await sleep(1_500)
      const perConnection = ((await rssKiB(proxy.child.pid)) - before) / clients.length
      for (const c of clients) c.socket.destroy()
      assert.ok(perConnection <= 40, `${perConnection.toFixed(1)} KiB per half-sent head of ${size} bytes`)
    }, ['--header-timeout', '60000'])
  }
  await withProxy(answer.weather, async ({ proxy, get }) => {
    const held = Array.from({ length: 3 }, () => rawClient(port(proxy), '', { localAddress: '127.0.0.5' }))
    await sleep(100)
    const refused = await rawClient(port(proxy), 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n', { localAddress: '127.0.0.5' }).closed
    assert.match(refused.data, /^HTTP\/1\.1 503/)
    assert.match(refused.data, /ERR_TOO_MANY_CONNECTIONS_FROM_ADDRESS/)
    const other = await rawClient(port(proxy), 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', { localAddress: '127.0.0.6' }).closed
    assert.match(other.data, /^HTTP\/1\.1 200/, 'another address is served')
    for (const h of held) h.socket.destroy()
    await sleep(100)
    const again = await rawClient(port(proxy), 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', { localAddress: '127.0.0.5' }).closed
    assert.match(again.data, /^HTTP\/1\.1 200/, 'slots of that address free again')
    const metrics = await (await get('/metrics')).text()
    assert.match(metrics, /^weather_cache_proxy_refused_connections_total\{reason="per-address"\} 1$/m)
  }, ['--max-connections-per-ip', '3'])
})

test('defect 7: a request timeout is a 504 with Retry-After, logged under the route that timed out', async () => {
  const { mkdtempSync, readFileSync } = await import('node:fs')
  const { tmpdir } = await import('node:os')
  const dir = mkdtempSync(`${tmpdir()}/weather-cache-timeout-`)
  await withProxy(answer.hang, async ({ get }) => {
    const slow = await get('/v1/weather?lat=1&lon=1')
    assert.equal(slow.status, 504)
    assert.ok(Number(slow.headers.get('retry-after')) >= 1)
    assert.equal((await slow.json()).error.code, 'ERR_UPSTREAM_TIMEOUT')
    const head = await get('/v1/weather?lat=1&lon=1', { method: 'HEAD' })
    assert.equal(head.status, 504)
  }, ['--request-timeout', '300', '--access-log', `${dir}/access.log`])
  const log = readFileSync(`${dir}/access.log`, 'utf8').trim().split('\n').map((l) => JSON.parse(l))
  assert.deepEqual(log.map((l) => [l.method, l.path, l.status]), [['GET', '/v1/weather', 504], ['HEAD', '/v1/weather', 504]])
})

test('defect 8: If-None-Match reads every header line, and W/W/ is no validator', () =>
  withProxy(answer.weather, async ({ proxy, get }) => {
    const { rawRequest } = await import('./serve-process.mjs')
    const etag = (await get('/v1/weather?lat=10&lon=10')).headers.get('etag')
    const ask = (lines) => rawRequest(port(proxy), `GET /v1/weather?lat=10&lon=10 HTTP/1.1\r\nHost: localhost\r\n${lines}Connection: close\r\n\r\n`)
    assert.equal((await ask(`If-None-Match: "other"\r\nIf-None-Match: ${etag}\r\n`)).status, 304, 'the second line matches')
    assert.equal((await ask(`If-None-Match: "a", ${etag}\r\n`)).status, 304, 'a list')
    assert.equal((await ask(`If-None-Match: W/${etag}\r\n`)).status, 200, 'W/W/ is malformed')
    assert.equal((await ask(`If-None-Match: ${etag.slice(2)}\r\n`)).status, 304, 'weak comparison: the strong form matches')
    assert.equal((await ask(`If-None-Match: ${etag}x\r\n`)).status, 200)
  }))

test('defect 10: coordinates padded with Unicode whitespace are refused', () =>
  withProxy(answer.weather, async ({ get, upstream }) => {
    for (const lat of ['%E3%80%801', '%C2%A01', '1%E2%80%83', '%0B1']) {
      const res = await get(`/v1/weather?lat=${lat}&lon=1`)
      assert.equal(res.status, 400, lat)
      assert.equal((await res.json()).error.code, 'ERR_INVALID_ARG_VALUE')
    }
    assert.equal((await get('/v1/weather?lat=%201%20&lon=1')).status, 200, 'ASCII spaces still pass')
    assert.equal(upstream.count, 1)
  }))

test('defect 11: a refused connection has its request read, so the 503 arrives and the close is a FIN, not a reset', () =>
  withProxy(answer.weather, async ({ proxy }) => {
    const held = rawClient(port(proxy))
    await new Promise((resolve) => setTimeout(resolve, 100))
    // The request sits unread in the proxy's socket unless the proxy reads it, and closing a
    // socket with unread data (or receiving data once closed) sends a reset, which on a real
    // network can overtake the answer. The client, still sending as one across a network
    // would be when the 503 arrives, must find the proxy reading until it is done: no reset
    // (EPIPE / ECONNRESET).
    const refused = await new Promise((resolve) => {
      const socket = net.connect({ port: port(proxy), host: '127.0.0.1', allowHalfOpen: true })
      let data = ''
      let error = null
      socket.on('connect', () => socket.write(`GET /v1/weather?lat=1&lon=1 HTTP/1.1\r\nHost: x\r\nx-pad: ${'p'.repeat(4000)}\r\n\r\n`))
      socket.on('data', (d) => (data += d))
      socket.on('end', () => setTimeout(() => socket.write('\r\n', () => setTimeout(() => socket.end(), 100)), 100))
      socket.on('error', (e) => (error = e))
      socket.on('close', () => resolve({ data, error }))
    })
    assert.match(refused.data, /^HTTP\/1\.1 503/)
    assert.equal(refused.error?.code, undefined, 'closed with a FIN, never a reset')
    held.socket.destroy()
  }, ['--max-connections', '1']))

test('defect 12: 404 before 405, 414 for a long path, bytes as sent for HEAD and 304, 127.evil.com is not loopback', async () => {
  const { mkdtempSync, readFileSync } = await import('node:fs')
  const { tmpdir } = await import('node:os')
  const dir = mkdtempSync(`${tmpdir()}/weather-cache-cosmetic-`)
  await withProxy(answer.weather, async ({ get }) => {
    assert.equal((await get('/nope', { method: 'POST' })).status, 404)
    const long = await get(`/${'p'.repeat(20 * 1024)}`)
    assert.equal(long.status, 414)
    assert.equal((await long.json()).error.code, 'ERR_URI_TOO_LONG')
    const full = await get('/v1/weather?lat=1&lon=1')
    const etag = full.headers.get('etag')
    const length = Number(full.headers.get('content-length'))
    assert.equal((await get('/v1/weather?lat=1&lon=1', { method: 'HEAD' })).status, 200)
    assert.equal((await get('/v1/weather?lat=1&lon=1', { headers: { 'if-none-match': etag } })).status, 304)
    await new Promise((resolve) => setTimeout(resolve, 200))
    const log = readFileSync(`${dir}/access.log`, 'utf8').trim().split('\n').map((l) => JSON.parse(l))
    const weather = log.filter((l) => l.path === '/v1/weather').map((l) => [l.method, l.status, l.bytes])
    assert.deepEqual(weather, [['GET', 200, length], ['HEAD', 200, 0], ['GET', 304, 0]])
  }, ['--access-log', `${dir}/access.log`])
  // The warning's loopback test reads addresses, not prefixes of names.
  const { runServe } = await import('./serve-process.mjs')
  const { stderr } = await runServe(['--host', '127.evil.com', '--port', '0'], { OPEN_WEATHER_API_KEY: API_KEY })
  assert.match(stderr, /"level":40,.*"msg":"listening on 127\.evil\.com without a token/)
})
