// A caller's own max age (`getForecast`'s `maxAgeMs`) and refresh-ahead (`refreshAheadMs`), on
// the manual clock over a loopback upstream.
import assert from 'node:assert/strict'
import { test } from 'node:test'

import { until, withService } from './helpers.mjs'
import { answer } from './upstream.mjs'

/** An upstream whose temperature goes up by one degree per call: tells fetches apart. */
function counting() {
  let calls = 0
  return (req, res, q) => answer.fixed(10 + calls++)(req, res, q)
}

const view = ({ summary, meta }) => [meta.source, summary.tempC, meta.ageMs]

test('maxAgeMs: an older entry is a miss for that call only, floored by minRefreshIntervalMs', () =>
  withService({ refreshAheadMs: 0 }, async ({ service, upstream }) => {
    await service.getForecast(null, 'u', 1, 1)
    service.advanceTime(120_000)
    assert.deepEqual(view(await service.getForecast(null, 'u', 1, 1, { maxAgeMs: 60_000 })), ['cache', 10, 120_000], 'the floor: 5 min')
    service.advanceTime(240_000)
    assert.deepEqual(view(await service.getForecast(null, 'a', 1, 1)), ['cache', 10, 360_000], 'others take the cached one')
    // Ten callers who want at most two minutes share one fetch.
    const fresh = await Promise.all(Array.from({ length: 10 }, (_, i) => service.getForecast(null, `d${i}`, 1 + i * 1e-4, 1, { maxAgeMs: 120_000 })))
    for (const r of fresh) assert.deepEqual(view(r).slice(1), [11, 0])
    assert.equal(upstream.count, 2)
    const { misses, coalesced } = service.stats()
    assert.deepEqual({ misses, coalesced }, { misses: 2, coalesced: 9 })
  }, counting()))

test('maxAgeMs: while the provider is rate limited the cache answers, with its age', () =>
  withService({ refreshAheadMs: 0 }, async ({ service, upstream }) => {
    await service.getForecast(null, 'u', 1, 1)
    upstream.behave(answer.rateLimited(3600))
    await assert.rejects(service.getForecast(null, 'v', -30, 150), { code: 'ERR_RATE_LIMITED' })
    service.advanceTime(400_000)
    const r = await service.getForecast(null, 'u', 1, 1, { maxAgeMs: 60_000 })
    assert.equal(r.meta.source, 'cache')
    assert.equal(r.meta.ageMs, 400_000, 'older than asked for, and saying so')
    assert.equal(upstream.count, 2)
  }))

test('maxAgeMs must be a non-negative integer', () =>
  withService({}, async ({ service }) => {
    await assert.rejects(service.getForecast(null, 'u', 1, 1, { maxAgeMs: '60' }), { code: 'ERR_INVALID_ARG_TYPE' })
    await assert.rejects(service.getForecast(null, 'u', 1, 1, { maxAgeMs: -1 }), { code: 'ERR_OUT_OF_RANGE', message: /options\.maxAgeMs/ })
    await assert.rejects(service.getForecast(null, 'u', 1, 1, { maxAgeMs: 1.5 }), { code: 'ERR_OUT_OF_RANGE' })
  }))

test('refreshAheadMs: one refresh for many requests before expiry, so the area is never stale', () =>
  withService({ refreshAheadMs: 30_000 }, async ({ service, upstream }) => {
    await service.getForecast(null, 'u', 1, 1)
    service.advanceTime(570_000)
    const hits = await Promise.all(Array.from({ length: 50 }, (_, i) => service.getForecast(null, `d${i}`, 1 + i * 1e-4, 1)))
    for (const r of hits) assert.deepEqual(view(r), ['cache', 10, 570_000])
    await until(() => service.stats().inflight === 0 && upstream.count === 2, 'the refresh')
    service.advanceTime(30_000)
    assert.deepEqual(view(await service.getForecast(null, 'u', 1, 1)), ['cache', 11, 30_000])
    const { staleHits, backgroundRefreshes } = service.stats()
    assert.deepEqual({ staleHits, backgroundRefreshes }, { staleHits: 0, backgroundRefreshes: 1 })
  }, counting()))

test('refreshAheadMs: none while rate limited, none out of the budget reserve', async () => {
  await withService({ refreshAheadMs: 30_000 }, async ({ service, upstream }) => {
    await service.getForecast(null, 'u', 1, 1)
    upstream.behave(answer.rateLimited(3600))
    await assert.rejects(service.getForecast(null, 'v', -30, 150), { code: 'ERR_RATE_LIMITED' })
    service.advanceTime(580_000)
    assert.equal((await service.getForecast(null, 'u', 1, 1)).meta.source, 'cache')
    assert.equal(service.stats().backgroundRefreshes, 0)
    assert.equal(upstream.count, 2)
  })
  // 2 calls a day: the one a background refresh could use is the reserve.
  await withService({ refreshAheadMs: 30_000, budget: { perDay: 2 } }, async ({ service, upstream }) => {
    service.advanceTime(86_400_000 - (Date.now() % 86_400_000) + 1_000)
    await service.getForecast(null, 'u', 1, 1)
    service.advanceTime(580_000)
    assert.equal((await service.getForecast(null, 'u', 1, 1)).meta.source, 'cache')
    assert.deepEqual([service.stats().backgroundRefreshes, upstream.count], [0, 1])
  })
})

test('refreshAheadMs: checked, and its default stays inside a short freshTtlMs', () =>
  withService({}, async () => {
    const { WeatherService } = await import('../main.js')
    assert.throws(() => new WeatherService({ refreshAheadMs: 600_000 }), { code: 'ERR_OUT_OF_RANGE', message: /refreshAheadMs/ })
    assert.throws(() => new WeatherService({ refreshAheadMs: -1 }), { code: 'ERR_OUT_OF_RANGE' })
    new WeatherService({ freshTtlMs: 1_000 }).close()
    new WeatherService({ refreshAheadMs: 0, freshTtlMs: 1_000 }).close()
  }))

test('refreshAheadMs: a user asking again and again (answered by the JS front) still refreshes ahead', () =>
  withService({ refreshAheadMs: 30_000 }, async ({ service, upstream }) => {
    for (let i = 0; i < 3; i++) assert.equal((await service.getWeather(null, 'u', 1, 1)).tempC, 10)
    service.advanceTime(575_000)
    assert.equal((await service.getWeather(null, 'u', 1, 1)).tempC, 10)
    await until(() => service.stats().inflight === 0 && upstream.count === 2, 'the refresh')
    service.advanceTime(25_000)
    assert.equal((await service.getWeather(null, 'u', 1, 1)).tempC, 11, 'never stale')
    assert.equal(service.stats().staleHits, 0)
  }, counting()))
