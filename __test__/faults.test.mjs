// Fault injection over real loopback HTTP, on the manual clock. For each fault: how many
// upstream calls, what every waiter got, what the next request after the window does, and
// that the API key appears in no error.
import assert from 'node:assert/strict'
import { test } from 'node:test'

import { recordingLogger, setup, until, withService as withPlainService } from './helpers.mjs'
import { API_KEY, answer } from './upstream.mjs'

/** Every error, event, result and metric any test in this file produced: checked for the key
 * at the end. */
const seenErrors = []
const seenText = []
const everything = recordingLogger()

/** withService, with every event (debug and up) recorded and the outputs collected. */
function withService(options, fn, behaviour) {
  return withPlainService({ logLevel: 'debug', logger: everything.logger, ...options }, async (env) => {
    const { service } = env
    const getForecast = service.getForecast.bind(service)
    service.getForecast = (...args) =>
      getForecast(...args).then((result) => (seenText.push(JSON.stringify(result)), result))
    try {
      return await fn(env)
    } finally {
      seenText.push(service.metricsText(), JSON.stringify(service.stats()))
    }
  }, behaviour)
}

async function settleAll(promises) {
  const results = await Promise.allSettled(promises)
  for (const r of results) if (r.status === 'rejected') seenErrors.push(r.reason)
  return results
}

const faults = [
  { name: 'HTTP 500', behaviour: answer.status(500), code: 'ERR_UPSTREAM_STATUS', status: 500 },
  { name: 'HTTP 503', behaviour: answer.status(503), code: 'ERR_UPSTREAM_STATUS', status: 503 },
  { name: 'a response slower than requestTimeoutMs', behaviour: answer.delayed(3000), code: 'ERR_UPSTREAM_TIMEOUT' },
  { name: 'a connection reset mid-body', behaviour: answer.resetMidBody, code: 'ERR_UPSTREAM_NETWORK' },
  { name: 'invalid JSON', behaviour: answer.garbage, code: 'ERR_UPSTREAM_INVALID_RESPONSE' },
  { name: 'JSON without current.temp', behaviour: answer.noTemp, code: 'ERR_UPSTREAM_INVALID_RESPONSE' },
  { name: 'a 10 MiB body', behaviour: answer.huge(10 * 1024 * 1024), code: 'ERR_UPSTREAM_INVALID_RESPONSE' },
]

// Every provider, each alone: the same faults, the same outcomes.
const PROVIDERS = ['openweather', 'open-meteo', 'met-norway']

for (const [provider, fault] of PROVIDERS.flatMap((p) => faults.map((f) => [p, f]))) {
  test(`${provider}: ${fault.name}: one call, every waiter gets ${fault.code}, the area cools down`, () =>
    withService({ requestTimeoutMs: 200, provider }, async ({ service, upstream }) => {
      // Three getForecast and three getWeather callers for one area, concurrently.
      const forecasts = [1, 2, 3].map((i) => service.getForecast(null, `f${i}`, 47.6, -122.3 + i * 1e-4))
      const weathers = [1, 2, 3].map((i) => service.getWeather(null, `w${i}`, 47.6, -122.3 - i * 1e-4))
      const results = await settleAll(forecasts)
      assert.deepEqual(await Promise.all(weathers), [null, null, null])
      assert.equal(upstream.count, 1)
      for (const r of results) {
        assert.equal(r.status, 'rejected')
        assert.equal(r.reason.code, fault.code, r.reason.message)
        assert.ok(r.reason instanceof Error)
        if (fault.status) assert.equal(r.reason.status, fault.status)
      }

      // Inside the 5 s cooldown: the same error, without an upstream call.
      service.advanceTime(4_999)
      const [during] = await settleAll([service.getForecast(null, 'late', 47.6, -122.3)])
      assert.equal(during.reason.code, fault.code)
      assert.equal(await service.getWeather(null, 'late', 47.6, -122.3), null)
      assert.equal(upstream.count, 1)

      // After the window the next request goes upstream (which has recovered).
      upstream.behave(answer.weather)
      service.advanceTime(1)
      const after = await service.getForecast(null, 'after', 47.6, -122.3)
      assert.deepEqual([after.meta.source, after.meta.provider], ['network', provider])
      assert.equal(upstream.count, 2)
      assert.ok(upstream.requests.every((q) => q.provider === provider))
    }, fault.behaviour))
}

test('consecutive failures double the area cooldown, with jitter inside its bounds', () =>
  withService({ jitterRatio: 0.2 }, async ({ service, upstream }) => {
    const windows = []
    for (let i = 0; i < 5; i++) {
      await settleAll([service.getForecast(null, 'u', 1, 1)])
      // Find the window's end by stepping the clock 1% of the expected window at a time.
      const base = 5000 * 2 ** i
      let waited = 0
      while (upstream.count === i + 1) {
        service.advanceTime(base / 100)
        waited += base / 100
        await settleAll([service.getForecast(null, 'u', 1, 1)])
        assert.ok(waited <= base * 1.21, `window ${i} longer than +20%`)
      }
      windows.push(waited)
      assert.ok(waited >= base * 0.79, `window ${i} shorter than -20%: ${waited}`)
    }
    assert.equal(upstream.count, 6)
  }, answer.status(502)))

test('another area is not affected by a failing one', () =>
  withService({}, async ({ service, upstream }) => {
    upstream.behave((req, res, q) => (q.lat > 0 ? answer.status(503)(req, res, q) : answer.weather(req, res, q)))
    await settleAll([service.getForecast(null, 'u', 10, 10)])
    const other = await service.getForecast(null, 'u', -10, 10)
    assert.equal(other.meta.source, 'network')
    assert.equal(upstream.count, 2)
  }))

test('1,000 drones on a failing area make one call per window', () =>
  withService({}, async ({ service, upstream }) => {
    for (let window = 0; window < 3; window++) {
      const drones = Array.from({ length: 1000 }, (_, i) => service.getWeather(null, `drone-${i}`, 30 + (i % 50) * 1e-4, 30))
      assert.deepEqual(new Set(await Promise.all(drones)), new Set([null]))
      assert.equal(upstream.count, window + 1)
      service.advanceTime(5000 * 2 ** window)
    }
  }, answer.status(500)))

for (const provider of PROVIDERS) {
  test(`${provider}: 429 with Retry-After: 120 cools the whole provider for exactly 120 s`, () =>
    withService({ provider }, async ({ service, upstream }) => {
      const [first] = await settleAll([service.getForecast(null, 'u', 1, 1)])
      assert.equal(first.reason.code, 'ERR_RATE_LIMITED')
      assert.equal(first.reason.retryAfterMs, 120_000)
      upstream.behave(answer.weather)
      // Any area, any user: no upstream request during the cooldown.
      service.advanceTime(119_999)
      const [during] = await settleAll([service.getForecast(null, 'v', -40, 100)])
      assert.equal(during.reason.code, 'ERR_RATE_LIMITED')
      assert.equal(during.reason.retryAfterMs, 1)
      assert.equal(await service.getWeather(null, 'w', 60, 60), null)
      assert.equal(upstream.count, 1)
      service.advanceTime(1)
      assert.equal((await service.getForecast(null, 'v', -40, 100)).meta.source, 'network')
      assert.equal(upstream.count, 2)
    }, answer.rateLimited(120)))
}

test('429 with an HTTP-date Retry-After, measured against the response Date', () =>
  withService({}, async ({ service, upstream }) => {
    const [first] = await settleAll([service.getForecast(null, 'u', 1, 1)])
    assert.equal(first.reason.code, 'ERR_RATE_LIMITED')
    assert.equal(first.reason.retryAfterMs, 90_000)
    service.advanceTime(89_999)
    await settleAll([service.getForecast(null, 'u', 1, 1)])
    assert.equal(upstream.count, 1)
  }, (req, res) => {
    const now = Math.floor(Date.now() / 1000) * 1000 - 3_600_000 // a server clock an hour behind
    const body = JSON.stringify({ cod: 429, message: 'slow down' })
    res.writeHead(429, {
      'Content-Type': 'application/json',
      Date: new Date(now).toUTCString(),
      'Retry-After': new Date(now + 90_000).toUTCString(),
    })
    res.end(body)
  }))

test('429 without Retry-After: 60 s doubling to 30 min (no jitter), reset by a success', () =>
  withService({}, async ({ service, upstream }) => {
    const windows = []
    for (let i = 0; i < 7; i++) {
      const [r] = await settleAll([service.getForecast(null, 'u', 1, 1)])
      assert.equal(r.reason.code, 'ERR_RATE_LIMITED')
      windows.push(r.reason.retryAfterMs)
      service.advanceTime(r.reason.retryAfterMs)
    }
    assert.deepEqual(windows, [60_000, 120_000, 240_000, 480_000, 960_000, 1_800_000, 1_800_000])
    assert.equal(upstream.count, 7)
    upstream.behave(answer.weather)
    await service.getForecast(null, 'u', 1, 1)
    upstream.behave(answer.rateLimited())
    const [again] = await settleAll([service.getForecast(null, 'u', 50, 50)])
    assert.equal(again.reason.retryAfterMs, 60_000, 'a success restarted the doubling')
  }, answer.rateLimited()))

test('429 backoff with jitter stays within ±jitterRatio', async () => {
  const env = await setup({ jitterRatio: 0.1, logLevel: 'debug', logger: everything.logger }, answer.rateLimited())
  try {
    const { service } = env
    for (let i = 0; i < 6; i++) {
      const [r] = await settleAll([service.getForecast(null, 'u', 1, 1)])
      const base = Math.min(60_000 * 2 ** i, 1_800_000)
      assert.ok(r.reason.retryAfterMs >= base * 0.9 && r.reason.retryAfterMs <= base * 1.1, `${i}: ${r.reason.retryAfterMs}`)
      service.advanceTime(r.reason.retryAfterMs)
    }
  } finally {
    await env.teardown()
  }
})

test('during a rate-limit cooldown, fresh and stale cache are still served', () =>
  withService({}, async ({ service, upstream }) => {
    await service.getWeather(null, 'u', 1, 1)
    upstream.behave(answer.rateLimited(3600))
    await settleAll([service.getForecast(null, 'u', 20, 20)]) // trips the cooldown
    assert.equal((await service.getForecast(null, 'v', 1, 1)).meta.source, 'cache')
    service.advanceTime(600_000) // the entry turns stale; no refresh may start
    const stale = await service.getForecast(null, 'v', 1, 1)
    assert.equal(stale.meta.source, 'stale-cache')
    assert.equal(upstream.count, 2)
  }))

test('an upstream that never answers: close() settles every pending Promise', async () => {
  const env = await setup({ requestTimeoutMs: 60_000, logLevel: 'debug', logger: everything.logger }, answer.hang)
  const { service, upstream } = env
  try {
    const pending = [
      ...Array.from({ length: 5 }, (_, i) => service.getWeather(null, `w${i}`, 1, 1)),
      ...Array.from({ length: 5 }, (_, i) => service.getForecast(null, `f${i}`, 1, 1)),
      service.warmup('x', 2, 2),
    ]
    // One flight for the area of the ten calls, one for the warmup's: both asked, none more.
    await until(() => upstream.count === 2, 'both requests to reach the upstream')
    assert.equal(service.stats().inflight, 2)
    service.close()
    const results = await settleAll(pending)
    assert.deepEqual(results.slice(0, 5).map((r) => r.value), [null, null, null, null, null])
    for (const r of results.slice(5, 10)) assert.equal(r.reason.code, 'ERR_SERVICE_CLOSED')
    assert.equal(results[10].status, 'fulfilled')
  } finally {
    await env.teardown()
  }
})

test('the API key appears in no error, event, meta, counter or metrics text above', async () => {
  await new Promise((resolve) => setTimeout(resolve, 50)) // queued logger-option events land
  assert.ok(seenErrors.length > 30, `only ${seenErrors.length} errors collected`)
  for (const err of seenErrors) {
    const text = `${err.message}\n${err.stack}\n${JSON.stringify(err)}`
    assert.ok(!text.includes(API_KEY), text)
    assert.ok(!/appid|https?:\/\//.test(err.message), err.message)
  }
  const names = new Set(everything.records.map((r) => r.msg))
  for (const name of ['weather.request.sent', 'weather.error.network', 'weather.rate_limited', 'weather.backoff.state', 'weather.cache.miss']) {
    assert.ok(names.has(name), `${name} was recorded`)
  }
  const events = JSON.stringify(everything.records.map((r) => [r.msg, r.obj]))
  assert.ok(!events.includes(API_KEY) && !events.includes('appid='), 'events')
  assert.ok(seenText.length > 20)
  for (const text of seenText) assert.ok(!text.includes(API_KEY), text)
})
