// Stale-while-revalidate, the minimum refresh interval, abort, warmup and the presets.
import assert from 'node:assert/strict'
import { test } from 'node:test'

import { bucketKey } from '../main.js'
import { recordingLogger, rejectionsReported, until, withService } from './helpers.mjs'
import { answer } from './upstream.mjs'

/** An upstream whose temperature goes up by one degree per call: tells fetches apart. */
function counting() {
  let calls = 0
  return (req, res, q) => answer.fixed(10 + calls++)(req, res, q)
}

/** Waits until the area at (lat, lon) has a fresh entry again (after a background refresh). */
async function refreshed(service, lat, lon) {
  let meta
  for (let i = 0; i < 400; i++) {
    ;({ meta } = await service.getForecast(null, 'probe', lat, lon))
    if (meta.source === 'cache') return meta
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  throw new Error(`no refresh landed (last source ${meta.source})`)
}

test('SWR: stale entries are served at once and exactly one refresh runs', () =>
  withService({}, async ({ service, upstream }) => {
    const first = await service.getForecast(null, 'u', 1, 1)
    assert.deepEqual([first.meta.source, first.summary.tempC], ['network', 10])
    service.advanceTime(600_000)
    const stale = await Promise.all(['a', 'b', 'c', 'u'].map((user) => service.getForecast(null, user, 1, 1)))
    for (const r of stale) {
      assert.deepEqual([r.meta.source, r.summary.tempC, r.meta.ageMs], ['stale-cache', 10, 600_000])
    }
    const meta = await refreshed(service, 1, 1)
    assert.equal(meta.ageMs, 0)
    // A refresh is counted as it starts: a second one, still on its way, would show here.
    const { backgroundRefreshes, inflight } = service.stats()
    assert.deepEqual({ backgroundRefreshes, inflight }, { backgroundRefreshes: 1, inflight: 0 }, 'exactly one background refresh')
    assert.equal(upstream.count, 2)
    assert.equal((await service.getForecast(null, 'u', 1, 1)).summary.tempC, 11, 'the refresh replaced the entry')
  }, counting()))

test('SWR: past the stale window the entry is a miss', () =>
  withService({ staleTtlMs: 3_600_000 }, async ({ service, upstream }) => {
    await service.getForecast(null, 'u', 1, 1)
    service.advanceTime(3_599_999)
    assert.equal((await service.getForecast(null, 'u', 1, 1)).meta.source, 'stale-cache')
    await until(() => upstream.count === 2, 'the refresh')
    await refreshed(service, 1, 1)
    service.advanceTime(3_600_000)
    const after = await service.getForecast(null, 'u', 1, 1)
    assert.equal(after.meta.source, 'network')
  }, counting()))

test('SWR: a failed refresh is counted, never an unhandled rejection, and keeps the stale entry', () =>
  withService({}, async ({ service, upstream }) => {
    const rejections = []
    const onRejection = (reason) => rejections.push(reason)
    process.on('unhandledRejection', onRejection)
    try {
      await service.getForecast(null, 'u', 1, 1)
      upstream.behave(answer.status(503))
      service.advanceTime(600_000)
      assert.equal((await service.getForecast(null, 'u', 1, 1)).meta.source, 'stale-cache')
      // The refresh failed and landed: its area's cooldown is recorded before it leaves the
      // flights, so a second refresh would start (and be counted) at the next stale hit.
      await until(() => service.stats().upstreamErrors === 1 && service.stats().inflight === 0, 'the failed refresh to land')
      assert.equal((await service.getForecast(null, 'u', 1, 1)).meta.source, 'stale-cache')
      const { backgroundRefreshes, inflight } = service.stats()
      assert.deepEqual({ backgroundRefreshes, inflight }, { backgroundRefreshes: 1, inflight: 0 }, 'the area is cooling down: no second refresh')
      assert.equal(upstream.count, 2)
      await rejectionsReported()
      assert.deepEqual(rejections, [])
    } finally {
      process.off('unhandledRejection', onRejection)
    }
  }))

test('stale-if-error: a failed fetch falls back to the stale entry', () =>
  withService({}, async ({ service, upstream }) => {
    await service.getForecast(null, 'u', 1, 1)
    upstream.behave(answer.status(500))
    service.advanceTime(600_000)
    const forced = await service.getForecast(null, 'u', 1, 1, { forceRefresh: true })
    assert.equal(forced.meta.source, 'stale-cache')
    assert.equal(upstream.count, 2)
    assert.deepEqual(await service.getWeather(null, 'u', 1, 1), forced.summary)
  }))

test('forceRefresh inside the minimum interval is served from cache, after it fetches', () =>
  withService({}, async ({ service, upstream }) => {
    await service.getForecast(null, 'u', 1, 1)
    service.advanceTime(299_999)
    const inside = await service.getForecast(null, 'u', 1, 1, { forceRefresh: true })
    assert.deepEqual([inside.meta.source, inside.summary.tempC], ['cache', 10])
    assert.equal(upstream.count, 1)
    service.advanceTime(1)
    const after = await service.getForecast(null, 'u', 1, 1, { forceRefresh: true })
    assert.deepEqual([after.meta.source, after.summary.tempC], ['network', 11])
    assert.equal(upstream.count, 2)
  }, counting()))

test('no background refresh for an entry younger than minRefreshIntervalMs', () =>
  withService({ freshTtlMs: 60_000, minRefreshIntervalMs: 300_000, logLevel: 'debug' }, async ({ service, upstream }) => {
    await service.getForecast(null, 'u', 1, 1)
    service.advanceTime(120_000)
    const log = recordingLogger()
    assert.equal((await service.getForecast({ logger: log.logger }, 'u', 1, 1)).meta.source, 'stale-cache')
    // The lookup decided, and said so: a refresh it had started would be counted and in flight.
    assert.deepEqual(log.names(), ['weather.request.attempted', 'weather.request.skipped.minInterval', 'weather.cache.hit.stale'])
    const { backgroundRefreshes, inflight } = service.stats()
    assert.deepEqual({ backgroundRefreshes, inflight }, { backgroundRefreshes: 0, inflight: 0 })
    assert.equal(upstream.count, 1)
    service.advanceTime(180_000)
    await service.getForecast(null, 'u', 1, 1)
    await until(() => upstream.count === 2, 'the refresh once the interval passed')
  }))

test('abort one waiter of three: it rejects ABORT_ERR, the others get the result, the cache fills', () =>
  withService({}, async ({ service, upstream }) => {
    const controller = new AbortController()
    const one = service.getForecast(null, 'a', 1, 1, { signal: controller.signal })
    const two = service.getForecast(null, 'b', 1, 1)
    const three = service.getForecast(null, 'c', 1, 1, { signal: new AbortController().signal })
    await until(() => upstream.count === 1, 'the request to arrive')
    controller.abort(new Error('user navigated away'))
    await assert.rejects(one, (err) => {
      assert.equal(err.code, 'ABORT_ERR')
      assert.equal(err.name, 'AbortError')
      assert.equal(err.cause.message, 'user navigated away')
      return true
    })
    const [r2, r3] = await Promise.all([two, three])
    assert.equal(r2.meta.source, 'network')
    assert.deepEqual(r3.summary, r2.summary)
    assert.equal((await service.getForecast(null, 'a', 1, 1)).meta.source, 'cache')
    assert.equal(upstream.count, 1)
  }, answer.delayed(100)))

test('abort: the initiator aborting does not cancel the shared fetch', () =>
  withService({}, async ({ service, upstream }) => {
    const controller = new AbortController()
    const initiator = service.getForecast(null, 'a', 1, 1, { signal: controller.signal })
    const waiter = service.getForecast(null, 'b', 1, 1)
    controller.abort()
    await assert.rejects(initiator, { code: 'ABORT_ERR' })
    assert.equal((await waiter).meta.source, 'network')
    assert.equal(upstream.count, 1)
  }, answer.delayed(50)))

test('abort: an already aborted signal rejects at once, without a request', () =>
  withService({}, async ({ service, upstream }) => {
    await assert.rejects(service.getForecast(null, 'a', 1, 1, { signal: AbortSignal.abort() }), { code: 'ABORT_ERR' })
    // A fetch started is counted (misses) and in flight at once, before its request leaves.
    const { misses, inflight } = service.stats()
    assert.deepEqual({ misses, inflight }, { misses: 0, inflight: 0 })
    assert.equal(upstream.count, 0)
    await assert.rejects(service.getForecast(null, 'a', 1, 1, { signal: {} }), { code: 'ERR_INVALID_ARG_TYPE' })
    await assert.rejects(service.getForecast(null, 'a', 1, 1, { forceRefresh: 1 }), { code: 'ERR_INVALID_ARG_TYPE' })
    await assert.rejects(service.getForecast(null, 'a', 1, 1, 'force'), { code: 'ERR_INVALID_ARG_TYPE' })
  }))

test('abort: a signal shared by many calls keeps no listener after they settle', () =>
  withService({}, async ({ service }) => {
    const controller = new AbortController()
    const added = []
    const { signal } = controller
    const add = signal.addEventListener.bind(signal)
    const remove = signal.removeEventListener.bind(signal)
    signal.addEventListener = (type, fn, opts) => (added.push(fn), add(type, fn, opts))
    signal.removeEventListener = (type, fn, opts) => (added.splice(added.indexOf(fn), 1), remove(type, fn, opts))
    await Promise.all(Array.from({ length: 20 }, (_, i) => service.getForecast(null, `u${i}`, 1 + i, 1, { signal })))
    assert.equal(added.length, 0)
  }, answer.delayed(10)))

test('getForecast meta: source, fetchedAt, ageMs, rounded location, bucketKey', () =>
  withService({}, async ({ service }) => {
    const fetched = await service.getForecast(null, 'u', 48.85661, 2.35222)
    assert.deepEqual(fetched.meta.location, { lat: 48.86, lon: 2.35 })
    assert.equal(fetched.meta.bucketKey, bucketKey(48.86, 2.35), 'the key of the rounded location')
    assert.equal(fetched.meta.ageMs, 0)
    service.advanceTime(1234)
    const cached = await service.getForecast(null, 'v', 48.85, 2.35)
    assert.deepEqual([cached.meta.source, cached.meta.ageMs, cached.meta.fetchedAt], ['cache', 1234, fetched.meta.fetchedAt])
  }))

test('warmup caches the area, and a warmup that fails still resolves', () =>
  withService({}, async ({ service, upstream }) => {
    assert.equal(await service.warmup('u', 1, 1), undefined)
    assert.equal((await service.getForecast(null, 'v', 1, 1)).meta.source, 'cache')
    assert.equal(await service.warmup('u', 1, 1), undefined)
    assert.equal(upstream.count, 1, 'already fresh')
    upstream.behave(answer.status(500))
    assert.equal(await service.warmup('u', 50, 50), undefined)
    await assert.rejects(service.warmup('', 1, 1), { code: 'ERR_INVALID_ARG_VALUE' })
  }))

test('preset "minimal": no coalescing, no SWR, no backoff', () =>
  withService({ preset: 'minimal' }, async ({ service, upstream }) => {
    await Promise.all([1, 2, 3].map((i) => service.getWeather(null, `u${i}`, 1, 1)))
    assert.equal(upstream.count, 3, 'no coalescing')
    service.advanceTime(600_000)
    assert.equal((await service.getForecast(null, 'u1', 1, 1)).meta.source, 'network', 'no SWR')
    upstream.behave(answer.rateLimited())
    await assert.rejects(service.getForecast(null, 'u1', 30, 30), { code: 'ERR_RATE_LIMITED' })
    upstream.behave(answer.weather)
    assert.equal((await service.getForecast(null, 'u1', 30, 30)).meta.source, 'network', 'no cooldown')
    upstream.behave(answer.status(500))
    await assert.rejects(service.getForecast(null, 'u1', 40, 40), { code: 'ERR_UPSTREAM_STATUS' })
    await assert.rejects(service.getForecast(null, 'u1', 40, 40), { code: 'ERR_UPSTREAM_STATUS' })
    assert.equal(upstream.count, 8, 'no area cooldown either')
  }))

test('preset "minimal" with an explicit option: the option wins', () =>
  withService({ preset: 'minimal', coalesce: true }, async ({ service, upstream }) => {
    await Promise.all([1, 2, 3].map((i) => service.getWeather(null, `u${i}`, 1, 1)))
    assert.equal(upstream.count, 1)
  }, answer.delayed(20)))
