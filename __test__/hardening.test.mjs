// Regressions found in review: edge cases of closing, options, hostile callers and upstreams.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

import { WeatherService } from '../index.js'
import { recordingLogger, until, withService } from './helpers.mjs'
import { API_KEY, answer, startUpstream } from './upstream.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))

function runModule(source, env = {}) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', source], { cwd: root, env: { ...process.env, ...env } })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('exit', (code) => resolve({ code, stdout, stderr }))
  })
}

test('the default instance closed before its first use stays closed', async () => {
  const upstream = await startUpstream()
  try {
    const { code, stdout, stderr } = await runModule(
      `import { weatherService } from './index.js'
       weatherService.close()
       const error = await weatherService.getForecast(null, 'u', 1, 1).then(() => null, (e) => e)
       console.log(JSON.stringify({ code: error?.code, weather: await weatherService.getWeather(null, 'u', 1, 1).catch((e) => e.code) }))`,
      { OPEN_WEATHER_API_KEY: API_KEY, OPEN_WEATHER_BASE_URL: upstream.url },
    )
    assert.equal(code, 0, stderr)
    assert.deepEqual(JSON.parse(stdout), { code: 'ERR_SERVICE_CLOSED', weather: 'ERR_SERVICE_CLOSED' })
    assert.equal(upstream.count, 0)
  } finally {
    await upstream.close()
  }
})

test('a bad OPEN_WEATHER_BASE_URL rejects (never throws) and says where it came from, without the query', async () => {
  const { code, stdout, stderr } = await runModule(
    `import { weatherService } from './index.js'
     let outcome
     try { outcome = await weatherService.getWeather(null, 'u', 1, 1).then(() => 'resolved', (e) => e.code + ' ' + e.message) }
     catch (e) { outcome = 'threw ' + e.message }
     console.log(outcome)`,
    { OPEN_WEATHER_API_KEY: API_KEY, OPEN_WEATHER_BASE_URL: 'ftp://user:pw@example.com/x?appid=SECRET#frag' },
  )
  assert.equal(code, 0, stderr)
  assert.match(stdout, /^ERR_INVALID_ARG_VALUE .*process\.env\.OPEN_WEATHER_BASE_URL/)
  for (const secret of ['SECRET', 'user', 'pw', 'frag']) assert.ok(!stdout.includes(secret), stdout)
})

test('options: raising only initialBackoffMs is fine; errors never echo a key', () => {
  new WeatherService({ preset: 'minimal', initialBackoffMs: 60_000 }).close()
  new WeatherService({ initialBackoffMs: 3_600_000 }).close()
  assert.throws(() => new WeatherService({ initialBackoffMs: 3_600_000, maxBackoffMs: 60_000 }), { code: 'ERR_OUT_OF_RANGE' })
  assert.throws(() => new WeatherService({ apiKey: 987654321 }), (e) => e.code === 'ERR_INVALID_ARG_TYPE' && !e.message.includes('987654321'))
  assert.throws(
    () => new WeatherService({ baseUrl: 'https://k:v@example.com/p?appid=SECRET' }),
    (e) => e.code === 'ERR_INVALID_ARG_VALUE' && !/SECRET|k:v/.test(e.message),
  )
})

test('a signal whose addEventListener throws makes getForecast reject, not throw', () =>
  withService({}, async ({ service }) => {
    const hostile = {
      aborted: false,
      addEventListener() {
        throw new Error('no listeners here')
      },
    }
    let promise
    assert.doesNotThrow(() => (promise = service.getForecast(null, 'u', 1, 1, { signal: hostile })))
    await assert.rejects(promise, /no listeners here/)
  }, answer.delayed(20)))

test('an abort that fires during the call itself is not lost', () =>
  withService({ logLevel: 'debug' }, async ({ service, upstream }) => {
    const controller = new AbortController()
    const log = recordingLogger()
    // A session logger that aborts the caller's signal while the call is still running.
    const logger = { ...log.logger, debug: (obj, msg) => msg === 'weather.request.sent' && controller.abort() }
    const started = Date.now()
    await assert.rejects(service.getForecast({ logger }, 'u', 1, 1, { signal: controller.signal }), { code: 'ABORT_ERR' })
    assert.ok(Date.now() - started < 1000, 'rejected at once, not after the fetch')
    await until(() => upstream.count === 1, 'the fetch, which goes on for everyone else')
  }, answer.delayed(2000)))

test('redirects are not followed (the key would travel with them)', async () => {
  const target = await startUpstream()
  try {
    await withService({}, async ({ service }) => {
      await assert.rejects(service.getForecast(null, 'u', 1, 1), { code: 'ERR_UPSTREAM_STATUS', status: 302 })
      assert.equal(target.count, 0)
    }, (req, res) => res.writeHead(302, { Location: `${target.url}${req.url}` }).end())
  } finally {
    await target.close()
  }
})

test('advancing the manual clock to absurd times neither wraps nor freezes entries', () =>
  withService({}, async ({ service, upstream }) => {
    await service.getWeather(null, 'u', 1, 1)
    for (let i = 0; i < 4; i++) service.advanceTime(9e18)
    const after = await service.getForecast(null, 'u', 1, 1)
    assert.equal(after.meta.source, 'network')
    assert.equal(upstream.count, 2)
  }))

test('a huge Retry-After caps the cooldown at a day', () =>
  withService({}, async ({ service }) => {
    const error = await service.getForecast(null, 'u', 1, 1).then(() => null, (e) => e)
    assert.equal(error.code, 'ERR_RATE_LIMITED')
    assert.equal(error.retryAfterMs, 86_400_000)
  }, answer.rateLimited('999999999999')))

test('getWeather called on something else throws ERR_INVALID_THIS (no unsafe cast)', () => {
  const getWeather = WeatherService.prototype.getWeather
  for (const self of [{}, null, undefined, new Map(), Object.create(WeatherService.prototype)]) {
    assert.throws(() => getWeather.call(self, null, 'u', 1, 1), { code: 'ERR_INVALID_THIS' })
  }
})
