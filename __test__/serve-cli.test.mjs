// `serve` as an operator meets it (issues 22 and 25): configuration from flags, variables and a
// TOML file; JSON lines on stderr; the messages of a bad start; signals however it was started.
// Every test runs against the npm CLI, and again against the weather-cache-server binary
// (serve-binary.test.mjs).
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

import { redisServerInstalled, startRedis } from '../lib/local-redis.mjs'
import { entry, program, runServe, startServe, withProxy } from './serve-process.mjs'
import { API_KEY, answer, startUpstream } from './upstream.mjs'

const noRedis = !redisServerInstalled() && 'redis-server is not installed'
if (noRedis && process.env.CI) throw new Error('CI is set but redis-server is missing: .ci/run must install it')

const tempDir = (name) => mkdtempSync(join(tmpdir(), `weather-cache-${name}-`))
/** The JSON lines of a stderr (other lines, if any, left out). */
const jsonLines = (stderr) => stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l))
const noKey = { OPEN_WEATHER_API_KEY: '' }

async function until(check, what, ms = 5_000) {
  for (const started = Date.now(); !check(); await new Promise((resolve) => setTimeout(resolve, 20))) {
    if (Date.now() - started > ms) throw new Error(`never: ${what}`)
  }
}

test('configuration: flags over WEATHER_CACHE_* variables over the --config file over defaults', async () => {
  const upstream = await startUpstream(answer.weather)
  const dir = tempDir('config')
  const file = join(dir, 'serve.toml')
  writeFileSync(file, `[service]\nbaseUrl = "${upstream.url}"\nfreshTtlMs = 1000\n\n[server]\nhost = "127.0.0.2"\nport = 1\n`)
  const hostOf = async (args, env) => {
    const proxy = await startServe(['--config', file, ...args], { OPEN_WEATHER_API_KEY: API_KEY, ...env })
    try {
      const body = await (await fetch(`${proxy.url}/v1/weather?lat=1&lon=1`)).json()
      return [new URL(proxy.url).hostname, body.source]
    } finally {
      proxy.child.kill('SIGKILL')
      await proxy.exited
    }
  }
  try {
    // The file's host (its port 1 overridden by --port 0, which startServe passes), and its upstream.
    assert.deepEqual(await hostOf([], {}), ['127.0.0.2', 'network'])
    assert.deepEqual(await hostOf([], { WEATHER_CACHE_HOST: '127.0.0.3' }), ['127.0.0.3', 'network'])
    assert.deepEqual(await hostOf(['--host', '127.0.0.4'], { WEATHER_CACHE_HOST: '127.0.0.3' }), ['127.0.0.4', 'network'])
    // WEATHER_CACHE_CONFIG names the file too; the defaults fill the rest (127.0.0.1 without one).
    const proxy = await startServe(['--upstream', upstream.url], { OPEN_WEATHER_API_KEY: API_KEY, WEATHER_CACHE_CONFIG: file })
    proxy.child.kill('SIGKILL')
    await proxy.exited
    assert.equal(new URL(proxy.url).hostname, '127.0.0.2')
  } finally {
    await upstream.close()
  }
})

test('a bad --config file exits 2 naming the file, the line and the key; a bad variable names the variable', async () => {
  const dir = tempDir('bad-config')
  const file = join(dir, 'serve.toml')
  writeFileSync(file, '[server]\nport = 8080\nprot = 8081\n')
  let { code, stderr } = await runServe(['--config', file], { OPEN_WEATHER_API_KEY: API_KEY })
  assert.equal(code, 2)
  assert.ok(stderr.startsWith(`${program}: --config ${file}, line 3: unknown field \`prot\``), stderr)
  writeFileSync(file, '[service]\nfreshTtlMs = "ten minutes"\n')
  ;({ code, stderr } = await runServe(['--config', file], { OPEN_WEATHER_API_KEY: API_KEY }))
  assert.equal(code, 2)
  assert.match(stderr, new RegExp(`--config ${file}, line 2: invalid type`))
  ;({ code, stderr } = await runServe(['--config', join(dir, 'missing.toml')], { OPEN_WEATHER_API_KEY: API_KEY }))
  assert.equal(code, 2)
  assert.match(stderr, /--config: cannot read .*missing\.toml/)
  ;({ code, stderr } = await runServe([], { OPEN_WEATHER_API_KEY: API_KEY, WEATHER_CACHE_PORT: 'eighty' }))
  assert.equal(code, 2)
  assert.match(stderr, /WEATHER_CACHE_PORT must be a number \(got "eighty"\)/)
})

test('--help lists the routes and the Redis URL forms; --version prints the version', async () => {
  const { code, stdout } = await runServe(['--help'])
  assert.equal(code, 0)
  for (const route of ['GET /v1/weather', 'GET /v1/status', 'GET /metrics', 'GET /healthz', 'GET /readyz', 'GET /  ']) assert.ok(stdout.includes(route), route)
  assert.match(stdout, /redis\+sentinel:\/\/host:port\[,host:port\]\/service/)
  assert.match(stdout, /redis\+cluster:\/\//)
  const version = await runServe(['--version'])
  assert.deepEqual([version.code, version.stdout], [0, `${program} 0.1.0\n`])
})

test('issue 25 (1): events are JSON lines on stderr: a wrong --redis shows the tier degraded, a 429 shows; never a secret', async () => {
  await withProxy(answer.rateLimited(60), async ({ proxy, get }) => {
    assert.equal((await get('/v1/weather?lat=1&lon=1&user=drone-secret')).status, 503)
    await until(() => jsonLines(proxy.errors()).some((l) => l.msg === 'weather.rate_limited'), 'a rate_limited line')
    await until(() => jsonLines(proxy.errors()).some((l) => l.msg === 'weather.tier.degraded'), 'a tier.degraded line')
    const lines = jsonLines(proxy.errors())
    const limited = lines.find((l) => l.msg === 'weather.rate_limited')
    assert.equal(limited.level, 40)
    assert.deepEqual([limited.provider, limited.retryAfterMs], ['openweather', 60_000])
    assert.ok(Number.isInteger(limited.time) && Math.abs(limited.time - Date.now()) < 60_000)
    const degraded = lines.find((l) => l.msg === 'weather.tier.degraded')
    assert.equal(degraded.level, 40)
    assert.match(degraded.reason, /could not connect/)
    // info is the default: no debug events (they carry user ids).
    assert.ok(!lines.some((l) => l.level < 30), 'no debug lines at info')
    for (const secret of [API_KEY, 'hunter2', 'drone-secret']) assert.ok(!proxy.errors().includes(secret), secret)
  }, ['--redis', 'redis://:hunter2@127.0.0.1:1/0'])
})

test('issue 25 (1): --log-level debug shows requests, error hides warnings', async () => {
  await withProxy(answer.weather, async ({ proxy, get }) => {
    assert.equal((await get('/v1/weather?lat=1&lon=1')).status, 200)
    await until(() => jsonLines(proxy.errors()).some((l) => l.msg === 'weather.cache.miss'), 'a miss line')
    assert.equal(jsonLines(proxy.errors()).find((l) => l.msg === 'weather.cache.miss').level, 20)
  }, ['--log-level', 'debug'])
  await withProxy(answer.rateLimited(60), async ({ proxy, get }) => {
    assert.equal((await get('/v1/weather?lat=1&lon=1')).status, 503)
    await new Promise((resolve) => setTimeout(resolve, 300))
    assert.deepEqual(jsonLines(proxy.errors()), [])
  }, ['--log-level', 'error'])
})

test('issue 25 (2): no key and no keyless provider exits 2 naming OPEN_WEATHER_API_KEY and --api-key-file', async () => {
  const { code, stderr } = await runServe(['--port', '0'], noKey)
  assert.equal(code, 2)
  assert.match(stderr, /no OpenWeather API key: set OPEN_WEATHER_API_KEY or pass --api-key-file/)
  // A keyless provider needs no key.
  const upstream = await startUpstream(answer.weather)
  const proxy = await startServe(['--providers', 'open-meteo', '--open-meteo-url', upstream.url], noKey)
  proxy.child.kill('SIGKILL')
  await proxy.exited
  await upstream.close()
})

test('issue 25 (10): a key or token file readable by group or others is a warning at start', async () => {
  const upstream = await startUpstream(answer.weather)
  const dir = tempDir('modes')
  const [key, token] = [join(dir, 'key'), join(dir, 'token')]
  writeFileSync(key, `${API_KEY}\n`)
  writeFileSync(token, 'tok-secret\n')
  chmodSync(key, 0o644)
  chmodSync(token, 0o640)
  try {
    let proxy = await startServe(['--upstream', upstream.url, '--api-key-file', key, '--token-file', token], noKey)
    proxy.child.kill('SIGKILL')
    let { stderr } = await proxy.exited
    const warnings = jsonLines(stderr).filter((l) => l.level === 40).map((l) => l.msg)
    assert.ok(warnings.some((m) => m.startsWith(`--api-key-file ${key} is readable by group or others (mode 0644)`)), warnings.join('\n'))
    assert.ok(warnings.some((m) => m.startsWith(`--token-file ${token} is readable by group or others (mode 0640)`)), warnings.join('\n'))
    for (const secret of [API_KEY, 'tok-secret']) assert.ok(!stderr.includes(secret))
    chmodSync(key, 0o600)
    chmodSync(token, 0o600)
    proxy = await startServe(['--upstream', upstream.url, '--api-key-file', key, '--token-file', token], noKey)
    proxy.child.kill('SIGKILL')
    ;({ stderr } = await proxy.exited)
    assert.ok(!/readable by group or others/.test(stderr), stderr)
  } finally {
    await upstream.close()
  }
})

test('issue 25 (11): EADDRINUSE names the address and port; an unknown flag suggests; a bad --redis names --redis', async () => {
  const taken = net.createServer()
  await new Promise((resolve) => taken.listen(0, '127.0.0.1', resolve))
  const { port } = taken.address()
  try {
    const { code, stderr } = await runServe(['--port', String(port)], { OPEN_WEATHER_API_KEY: API_KEY })
    assert.equal(code, 2)
    assert.ok(stderr.startsWith(`${program}: listen EADDRINUSE: 127.0.0.1:${port} is already in use`), stderr)
  } finally {
    taken.close()
  }
  let { code, stderr } = await runServe(['--prot', '8080'], { OPEN_WEATHER_API_KEY: API_KEY })
  assert.equal(code, 2)
  assert.ok(stderr.startsWith(`${program}: unknown option: --prot (did you mean --port?)\n`), stderr)
  ;({ code, stderr } = await runServe(['--port', '0', '--redis', 'http://:pw@x'], { OPEN_WEATHER_API_KEY: API_KEY }))
  assert.equal(code, 2)
  assert.ok(stderr.startsWith(`${program}: --redis must be a redis://`), stderr)
  assert.ok(!stderr.includes('options.redis') && !stderr.includes(':pw@'), stderr)
})

test('issue 25 (12): --redis-key-prefix names the keys; --when-redis-down closed makes no upstream call without Redis', { skip: noRedis }, async () => {
  const redis = await startRedis()
  try {
    await withProxy(answer.weather, async ({ get }) => {
      assert.equal((await get('/v1/weather?lat=48.85&lon=2.35')).status, 200)
      let keys = ''
      for (let i = 0; i < 100 && !keys.includes('fleet-a'); i++) {
        keys = await redis.command('KEYS', '*')
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
      assert.match(keys, /fleet-a/)
      assert.ok(!/\bweather-cache\{/.test(keys), keys)
    }, ['--redis', redis.url, '--redis-key-prefix', 'fleet-a'])
  } finally {
    await redis.stop()
  }
  await withProxy(answer.weather, async ({ get, upstream }) => {
    const refused = await get('/v1/weather?lat=10&lon=10')
    assert.equal(refused.status, 503)
    assert.equal(upstream.count, 0)
  }, ['--redis', 'redis://127.0.0.1:1/0', '--budget-per-minute', '50', '--when-redis-down', 'closed'])
})

test('SIGINT to the process stops it like SIGTERM: requests finish, exit 0', async () => {
  const upstream = await startUpstream(answer.delayed(300))
  const proxy = await startServe(['--upstream', upstream.url], { OPEN_WEATHER_API_KEY: API_KEY })
  try {
    const inFlight = fetch(`${proxy.url}/v1/weather?lat=5&lon=5`)
    await until(() => upstream.count > 0, 'the upstream call')
    proxy.child.kill('SIGINT')
    assert.equal((await inFlight).status, 200)
    const { code, signal } = await proxy.exited
    assert.deepEqual([code, signal], [0, null])
    assert.match(proxy.output(), /SIGINT, finishing requests in flight/)
  } finally {
    proxy.child.kill('SIGKILL')
    await upstream.close()
  }
})

// Issue 25 (4): through npm, the signal reaches npm, not us.
if (entry === 'npm') {
  const repo = fileURLToPath(new URL('..', import.meta.url))
  /** A project that depends on this package, as `npm install` would lay it out (offline). */
  function project() {
    const dir = tempDir('npx-project')
    mkdirSync(join(dir, 'node_modules', '.bin'), { recursive: true })
    writeFileSync(join(dir, 'package.json'), '{ "name": "npx-project", "version": "1.0.0", "private": true }\n')
    symlinkSync(repo, join(dir, 'node_modules', 'weather-cache'))
    symlinkSync('../weather-cache/bin/weather-cache.mjs', join(dir, 'node_modules', '.bin', 'weather-cache'))
    return dir
  }

  for (const [how, command, signal] of [
    ['npx weather-cache serve', ['npx', '--offline', 'weather-cache', 'serve']],
    ['npm exec -- weather-cache serve', ['npm', 'exec', '--offline', '--', 'weather-cache', 'serve']],
  ].flatMap(([how, command]) => [[how, command, 'SIGTERM'], [how, command, 'SIGINT']])) {
    test(`issue 25 (4): ${signal} to \`${how}\` stops the server within the graceful window`, async () => {
      const upstream = await startUpstream(answer.delayed(300))
      const dir = project()
      const env = { ...process.env, OPEN_WEATHER_API_KEY: API_KEY, npm_config_update_notifier: 'false', npm_config_fund: 'false' }
      delete env.npm_command
      const child = spawn(command[0], [...command.slice(1), '--port', '0', '--upstream', upstream.url], { cwd: dir, env })
      let stdout = ''
      child.stdout.on('data', (d) => (stdout += d))
      const npmExited = new Promise((resolve) => child.on('exit', resolve))
      try {
        await until(() => /listening on (http:\/\/[^ ]+)/.test(stdout), 'listening', 30_000)
        const url = /listening on (http:\/\/[^ ]+)/.exec(stdout)[1]
        const inFlight = fetch(`${url}/v1/weather?lat=5&lon=5`)
        await until(() => upstream.count > 0, 'the upstream call')
        const sent = Date.now()
        child.kill(signal)
        const gone = await Promise.race([npmExited.then(() => true), new Promise((resolve) => setTimeout(resolve, 15_000, false))])
        assert.ok(gone, `npm still running 15 s after ${signal}`)
        // The request in flight is answered, then the port closes, well within the 10 s window.
        assert.equal((await inFlight).status, 200)
        let closed = false
        while (!closed && Date.now() - sent < 10_000) {
          closed = await fetch(`${url}/healthz`).then(() => false, () => true)
          if (!closed) await new Promise((resolve) => setTimeout(resolve, 50))
        }
        assert.ok(closed, `still listening ${Date.now() - sent} ms after ${signal} to npm`)
      } finally {
        child.kill('SIGKILL')
        await upstream.close()
      }
    })
  }
}
