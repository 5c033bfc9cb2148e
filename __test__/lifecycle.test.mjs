// close(), process exit, the default instance, module formats, and the key in errors.
import assert from 'node:assert/strict'
import { test } from 'node:test'

import { WeatherProxy, WeatherService } from '../main.js'
import { runNode, setup, until, withService } from './helpers.mjs'
import { API_KEY, answer, closedPort, startUpstream } from './upstream.mjs'


test('close(): pending calls settle, later calls reject ERR_SERVICE_CLOSED', async () => {
  const env = await setup({}, answer.hang)
  try {
    const { service, upstream } = env
    const weather = service.getWeather(null, 'u', 1, 1)
    const forecast = service.getForecast(null, 'v', 1, 1)
    const warm = service.warmup('w', 1, 1)
    // The three share one flight: close() while its request is at the (silent) upstream.
    await until(() => upstream.count === 1, 'the request to reach the upstream')
    assert.equal(service.stats().inflight, 1)
    service.close()
    assert.equal(await weather, null)
    await assert.rejects(forecast, { code: 'ERR_SERVICE_CLOSED' })
    assert.equal(await warm, undefined)
    await assert.rejects(service.getWeather(null, 'u', 1, 1), { code: 'ERR_SERVICE_CLOSED' })
    await assert.rejects(service.getForecast(null, 'u', 1, 1), { code: 'ERR_SERVICE_CLOSED' })
    service.close() // idempotent
  } finally {
    await env.teardown()
  }
})

test('the API key appears in no error when the upstream port is closed', async () => {
  const port = await closedPort()
  const service = new WeatherService({ apiKey: API_KEY, baseUrl: `http://127.0.0.1:${port}`, errorCooldownMs: 0 })
  try {
    assert.equal(await service.getWeather(null, 'u', 1, 1), null)
    const err = await service.getForecast(null, 'u', 1, 1).then(() => assert.fail('resolved'), (e) => e)
    assert.equal(err.code, 'ERR_UPSTREAM_NETWORK')
    const everything = `${err.message}\n${err.stack}\n${JSON.stringify(err)}\n${JSON.stringify(Object.getOwnPropertyDescriptors(err))}`
    assert.ok(!everything.includes(API_KEY), everything)
    assert.ok(!everything.includes('appid'), everything)
    assert.match(err.message, /Connection refused|connect/i)
  } finally {
    service.close()
  }
})

test('a script that makes one request exits promptly (nothing keeps Node alive)', async () => {
  const upstream = await startUpstream()
  try {
    const script = `
      const { WeatherService } = require('./main.js')
      const service = new WeatherService({ apiKey: ${JSON.stringify(API_KEY)}, baseUrl: ${JSON.stringify(upstream.url)},
                                           logger: { warn() {}, debug() {} }, staleTtlMs: 1 })
      service.getWeather(null, 'u', 1, 1).then((w) => console.log(JSON.stringify(w)))`
    const started = Date.now()
    const { code, stdout } = await runNode(['-e', script])
    assert.equal(code, 0)
    assert.equal(typeof JSON.parse(stdout).tempC, 'number')
    assert.equal(upstream.count, 1)
    // A kept-alive connection or a strong handle would hold the process for a long time.
    assert.ok(Date.now() - started < 15_000)
  } finally {
    await upstream.close()
  }
})

test('listen() resolves to a WeatherProxy, the exported class', async () => {
  const upstream = await startUpstream()
  const service = new WeatherService({ apiKey: API_KEY, baseUrl: upstream.url })
  try {
    const proxy = await service.listen({ port: 0 })
    assert.ok(proxy instanceof WeatherProxy)
    assert.equal((await fetch(`${proxy.url}/healthz`)).status, 200)
    await proxy.close(100)
    assert.throws(() => new WeatherProxy(), /constructor/)
  } finally {
    service.close()
    await upstream.close()
  }
})

test('require() and import both work, with the same exports', async () => {
  const cjs = await runNode(['-e', "const m = require('./main.js'); console.log(Object.keys(m).sort().join(','))"])
  const esm = await runNode([
    '--input-type=module',
    '-e',
    "import { WeatherService, weatherService, distanceKm, bucketKey } from './main.js'; import * as m from './main.js';" +
      "if (!(weatherService instanceof WeatherService)) throw new Error('default instance'); console.log(Object.keys(m).filter(k => k !== 'default').sort().join(','))",
  ])
  assert.equal(cjs.code, 0, cjs.stderr)
  assert.equal(esm.code, 0, esm.stderr)
  for (const name of ['WeatherService', 'weatherService', 'WeatherProxy', 'distanceKm', 'bucketKey']) {
    assert.ok(cjs.stdout.split(',').map((s) => s.trim()).includes(name), cjs.stdout)
    assert.ok(esm.stdout.split(',').map((s) => s.trim()).includes(name), esm.stdout)
  }
})

test('the default instance reads its configuration on first use, not at import', async () => {
  const upstream = await startUpstream()
  // A Redis URL nobody listens on: the tier is tried (and found down), the answer still comes.
  const redisUrl = `redis://:not-a-real-password@127.0.0.1:${await closedPort()}`
  try {
    const script = `
      import { weatherService } from './main.js'
      // Set after the import, as dotenv-style loaders often do.
      process.env.OPEN_WEATHER_API_KEY = ${JSON.stringify(API_KEY)}
      process.env.OPEN_WEATHER_BASE_URL = ${JSON.stringify(upstream.url)}
      process.env.WEATHER_CACHE_REDIS_URL = ${JSON.stringify(redisUrl)}
      const w = await weatherService.getWeather({ userId: 'dash' }, 40.7, -74)
      const { tierUp, tierErrors } = weatherService.stats()
      console.log(JSON.stringify({ w, tierUp, tierErrors }))
      weatherService.close()`
    const env = { OPEN_WEATHER_API_KEY: '', OPEN_WEATHER_BASE_URL: '', WEATHER_CACHE_REDIS_URL: '' }
    const { code, stdout, stderr } = await runNode(['--input-type=module', '-e', script], { env })
    assert.equal(code, 0, stderr)
    const { w, tierUp, tierErrors } = JSON.parse(stdout)
    assert.equal(typeof w.tempC, 'number')
    assert.deepEqual([tierUp, tierErrors > 0], [false, true], 'WEATHER_CACHE_REDIS_URL was read')
    assert.ok(!stdout.includes('not-a-real-password') && !stderr.includes('not-a-real-password'))
    assert.equal(upstream.count, 1)
  } finally {
    await upstream.close()
  }
})

test('an upstream reset mid-body: getWeather resolves null, getForecast rejects ERR_UPSTREAM_NETWORK', () =>
  withService({}, async ({ service }) => {
    assert.equal(await service.getWeather(null, 'u', 1, 1), null)
    await assert.rejects(service.getForecast(null, 'u', 1, 1), { code: 'ERR_UPSTREAM_NETWORK' })
  }, answer.resetMidBody))
