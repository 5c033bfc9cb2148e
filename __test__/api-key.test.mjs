// The API key's failures as a Dashboard developer meets them (issue 25 #2, #3, #9): no key is
// one warning per streak, and the default instance picks the key up once the environment has
// it; a key the provider refuses is ERR_UPSTREAM_AUTH, one error event, and one upstream call
// per cooldown; the default instance's log level comes from WEATHER_CACHE_LOG_LEVEL.
import assert from 'node:assert/strict'
import { test } from 'node:test'

import { WeatherService } from '../main.js'
import { recordingLogger, runNode } from './helpers.mjs'
import { API_KEY, startUpstream } from './upstream.mjs'

/** Runs an ES module script in a child process (the default instance is per process). */
const runScript = (script, env) => runNode(['--input-type=module', '-e', script], { env })

/** A session whose logger records `[level, msg, fields]`, printed as JSON by the script. */
const SESSION = `
  const records = []
  const logger = {}
  for (const level of ['trace', 'debug', 'info', 'warn', 'error', 'fatal']) logger[level] = (fields, msg) => records.push([level, msg, fields])
  const session = { userId: 'dash', logger }
`

test('the default instance warns once without a key, and picks the key up once the environment has it', async () => {
  const upstream = await startUpstream()
  try {
    const script = `
      import { weatherService } from './main.js'
      ${SESSION}
      const before = []
      for (let i = 0; i < 5; i++) before.push(await weatherService.getWeather(session, 40.7 + i, -74))
      const warned = records.length
      // Set after the first calls (a secret loaded late, a dotenv file read on demand).
      process.env.OPEN_WEATHER_API_KEY = ${JSON.stringify(API_KEY)}
      const after = await weatherService.getWeather(session, 40.7, -74)
      console.log(JSON.stringify({ before, warned, after, records }))
      weatherService.close()`
    const env = { OPEN_WEATHER_API_KEY: '', OPEN_WEATHER_BASE_URL: upstream.url, WEATHER_CACHE_LOG_LEVEL: '' }
    const { code, stdout, stderr } = await runScript(script, env)
    assert.equal(code, 0, stderr)
    const { before, warned, after, records } = JSON.parse(stdout)
    assert.deepEqual(before, [null, null, null, null, null])
    assert.equal(warned, 1, JSON.stringify(records))
    const [level, msg, fields] = records[0]
    assert.deepEqual([level, msg, fields.provider], ['warn', 'weather.request.skipped.noApiKey', 'openweather'])
    assert.match(fields.message, /OPEN_WEATHER_API_KEY/)
    assert.equal(typeof after?.tempC, 'number', 'the next miss fetched with the key')
    assert.equal(upstream.count, 1)
    assert.equal(upstream.calls[0].appid, API_KEY)
    assert.equal(records.length, 1, 'nothing more once the key works')
  } finally {
    await upstream.close()
  }
})

test('WEATHER_CACHE_LOG_LEVEL sets the default instance\'s level; a bad value is named', async () => {
  const upstream = await startUpstream()
  try {
    const script = `
      import { weatherService } from './main.js'
      ${SESSION}
      const w = await weatherService.getWeather(session, 40.7, -74)
      console.log(JSON.stringify({ w, names: records.map(([level, msg]) => level + ' ' + msg) }))
      weatherService.close()`
    const env = { OPEN_WEATHER_API_KEY: API_KEY, OPEN_WEATHER_BASE_URL: upstream.url }
    const debug = await runScript(script, { ...env, WEATHER_CACHE_LOG_LEVEL: 'debug' })
    assert.equal(debug.code, 0, debug.stderr)
    const { w, names } = JSON.parse(debug.stdout)
    assert.equal(typeof w.tempC, 'number')
    assert.ok(names.includes('debug weather.cache.miss'), names.join('\n'))
    assert.ok(names.includes('debug weather.request.sent'), names.join('\n'))

    const quiet = await runScript(script, { ...env, WEATHER_CACHE_LOG_LEVEL: '' })
    assert.equal(quiet.code, 0, quiet.stderr)
    assert.deepEqual(JSON.parse(quiet.stdout).names, [], 'at the default level, a miss that works logs nothing')
    // As environment variables are often written: any case; blank is unset.
    const upper = await runScript(script, { ...env, WEATHER_CACHE_LOG_LEVEL: 'DEBUG' })
    assert.equal(upper.code, 0, upper.stderr)
    assert.ok(JSON.parse(upper.stdout).names.includes('debug weather.request.sent'), upper.stdout)
    const blank = await runScript(script, { ...env, WEATHER_CACHE_LOG_LEVEL: '  ' })
    assert.equal(blank.code, 0, blank.stderr)
    assert.deepEqual(JSON.parse(blank.stdout).names, [], blank.stdout)

    const bad = await runScript(
      `import { weatherService } from './main.js'
       await weatherService.getWeather({ userId: 'dash' }, 40.7, -74).then(
         () => console.log('resolved'),
         (e) => console.log(JSON.stringify({ code: e.code, message: e.message })))`,
      { ...env, WEATHER_CACHE_LOG_LEVEL: 'verbose' },
    )
    assert.equal(bad.code, 0, bad.stderr)
    const error = JSON.parse(bad.stdout)
    assert.equal(error.code, 'ERR_INVALID_ARG_VALUE')
    assert.match(error.message, /process\.env\.WEATHER_CACHE_LOG_LEVEL/)
  } finally {
    await upstream.close()
  }
})

test('a rejected key: ERR_UPSTREAM_AUTH, one error event, one upstream call per cooldown, the key never shown', async () => {
  const upstream = await startUpstream()
  const wrongKey = 'wrong-key-9f8e7d6c5b4a'
  const service = new WeatherService({ apiKey: wrongKey, baseUrl: upstream.url, clock: 'manual', jitterRatio: 0 })
  const log = recordingLogger()
  const session = { userId: 'dash', logger: log.logger }
  try {
    const errors = []
    // Places far apart (no area cooldown covers another), over nearly ten minutes.
    for (let i = 0; i < 20; i++) {
      errors.push(await service.getForecast(session, `u${i}`, 10 + i, 20).then(() => null, (e) => e))
      assert.equal(await service.getWeather(session, `w${i}`, 10 + i, 21), null)
      service.advanceTime(29_000)
    }
    assert.equal(upstream.count, 1, 'one call for the whole cooldown')
    for (const error of errors) {
      assert.equal(error?.code, 'ERR_UPSTREAM_AUTH')
      assert.equal(error.provider, 'openweather')
      assert.equal(error.status, 401)
      assert.match(error.message, /openweather rejected the API key \(HTTP 401\)/)
      assert.ok(error.retryAfterMs > 0 && error.retryAfterMs <= 600_000, String(error.retryAfterMs))
    }
    const auth = log.find('weather.error.auth')
    assert.equal(auth.length, 1, log.names().join('\n'))
    assert.equal(auth[0].level, 'error')
    assert.match(auth[0].obj.message, /rejected the API key/)
    assert.equal(auth[0].obj.cooldownMs, 600_000)
    assert.equal(log.find('weather.error.network').length, 0, 'not a network error')
    const everything = JSON.stringify(log.records.map(({ level, msg, obj }) => ({ level, msg, obj }))) + errors.map((e) => e.message).join()
    assert.ok(!everything.includes(wrongKey), 'the key appears in no event and no error')
    const { upstreamErrors, rejected } = service.stats()
    assert.deepEqual([upstreamErrors, rejected > 30], [1, true])

    // The cooldown over (20 × 29 s = 580 s so far), the key is tried again.
    service.advanceTime(20_000)
    await assert.rejects(service.getForecast(session, 'again', 50, 20), { code: 'ERR_UPSTREAM_AUTH' })
    assert.equal(upstream.count, 2)
    assert.equal(log.find('weather.error.auth').length, 2)
  } finally {
    service.close()
    await upstream.close()
  }
})

test('through the proxy, a rejected key is 503 ERR_UPSTREAM_AUTH with Retry-After, one upstream call, and /readyz says why', async () => {
  const upstream = await startUpstream()
  const wrongKey = 'wrong-key-0a1b2c3d4e5f'
  const service = new WeatherService({ apiKey: wrongKey, baseUrl: upstream.url })
  const proxy = await service.listen({ port: 0 })
  try {
    const bodies = []
    for (let i = 0; i < 10; i++) {
      const response = await fetch(`${proxy.url}/v1/weather?lat=${10 + i}&lon=20`)
      assert.equal(response.status, 503)
      const retryAfter = Number(response.headers.get('retry-after'))
      assert.ok(retryAfter > 590 && retryAfter <= 600, String(retryAfter))
      const body = await response.text()
      assert.equal(JSON.parse(body).error.code, 'ERR_UPSTREAM_AUTH')
      bodies.push(body)
    }
    assert.equal(upstream.count, 1)
    const ready = await fetch(`${proxy.url}/readyz`)
    assert.equal(ready.status, 503)
    const readyBody = await ready.text()
    assert.equal(JSON.parse(readyBody).reasons[0].code, 'ERR_UPSTREAM_AUTH')
    const metrics = await (await fetch(`${proxy.url}/metrics`)).text()
    assert.ok(![...bodies, readyBody, metrics].some((text) => text.includes(wrongKey)), 'the key is in no answer')
  } finally {
    await proxy.close(1_000)
    service.close()
    await upstream.close()
  }
})

test('the default instance takes a new OPEN_WEATHER_API_KEY at once after the provider refused the old one', async () => {
  const upstream = await startUpstream()
  try {
    const script = `
      import { weatherService } from './main.js'
      ${SESSION}
      const w = (lat) => weatherService.getWeather(session, lat, -74)
      const steps = {}
      if (process.env.START === 'none') steps.none = await w(10)
      process.env.OPEN_WEATHER_API_KEY = 'wr0ng-k3y-' + process.env.START
      steps.wrong = await w(20)
      steps.stillWrong = await w(30)
      // The operator fixes the key, as the error says (a secret reloaded, say).
      process.env.OPEN_WEATHER_API_KEY = ${JSON.stringify(API_KEY)}
      steps.fixed = await w(40)
      // A key that works is kept, even if the variable goes away.
      delete process.env.OPEN_WEATHER_API_KEY
      steps.kept = await w(50)
      console.log(JSON.stringify({ steps, records }))
      weatherService.close()`
    for (const start of ['none', 'set']) {
      const calls = upstream.count
      const env = { OPEN_WEATHER_API_KEY: start === 'set' ? 'wr0ng-k3y-set' : '', START: start, OPEN_WEATHER_BASE_URL: upstream.url, WEATHER_CACHE_LOG_LEVEL: '' }
      const { code, stdout, stderr } = await runScript(script, env)
      assert.equal(code, 0, stderr)
      const { steps, records } = JSON.parse(stdout)
      assert.equal(steps.wrong, null, start)
      assert.equal(steps.stillWrong, null, 'the refused key is not tried again')
      assert.equal(typeof steps.fixed?.tempC, 'number', `${start}: the new key is used at once, not in ten minutes`)
      assert.equal(typeof steps.kept?.tempC, 'number')
      assert.deepEqual(upstream.calls.slice(calls).map((c) => c.appid), [`wr0ng-k3y-${start}`, API_KEY, API_KEY])
      assert.equal(records.filter(([, msg]) => msg === 'weather.error.auth').length, 1, JSON.stringify(records))
      assert.ok(!stdout.includes('wr0ng') && !stdout.includes(API_KEY), 'no key in any event')
    }
  } finally {
    await upstream.close()
  }
})
