// Events to session.logger / the logger option, stats() identities, metricsText().
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { test } from 'node:test'

import { recordingLogger, until, withService } from './helpers.mjs'
import { parsePrometheus } from './prometheus.mjs'
import { API_KEY, answer, closedPort, startUpstream } from './upstream.mjs'
import { WeatherService } from '../main.js'

const debug = { logLevel: 'debug' }

test('user hit: attempted, then hit.fresh with scope "user", at debug, logger as `this`', () =>
  withService(debug, async ({ service }) => {
    const log = recordingLogger()
    const session = { userId: 'alice', logger: log.logger }
    await service.getWeather(session, 'alice', 48.8566, 2.3522)
    log.records.length = 0
    await service.getWeather(session, 'alice', 48.87, 2.36)
    assert.deepEqual(log.names(), ['weather.request.attempted', 'weather.cache.hit.fresh'])
    const [hit] = log.find('weather.cache.hit.fresh')
    assert.equal(hit.level, 'debug')
    assert.equal(hit.self, log.logger)
    assert.deepEqual(Object.keys(hit.obj).sort(), ['ageMs', 'bucketKey', 'scope', 'userId'])
    assert.deepEqual([hit.obj.userId, hit.obj.scope, hit.obj.ageMs], ['alice', 'user', 0])
    const [distance] = log.find('weather.distance.computed')
    assert.equal(distance.level, 'debug')
    assert.equal(distance.obj.withinKm, 5)
    assert.ok(Math.abs(distance.obj.distanceKm - 1.331) < 0.001, `${distance.obj.distanceKm}`) // to the rounded entry (48.86, 2.35)
  }))

test('shared hit: scope "shared"', () =>
  withService(debug, async ({ service }) => {
    await service.getWeather(null, 'alice', 48.8566, 2.3522)
    const log = recordingLogger()
    await service.getWeather({ logger: log.logger }, 'bob', 48.86, 2.35)
    assert.deepEqual(log.names(), ['weather.request.attempted', 'weather.cache.hit.fresh'])
    assert.equal(log.find('weather.cache.hit.fresh')[0].obj.scope, 'shared')
  }))

test('miss + fetch: attempted, miss, sent (rounded coordinates, no URL, no key)', () =>
  withService(debug, async ({ service }) => {
    const log = recordingLogger()
    await service.getWeather({ logger: log.logger }, 'u', 36.123456, -86.678912)
    assert.deepEqual(log.names(), ['weather.request.attempted', 'weather.cache.miss', 'weather.request.sent'])
    const [attempted] = log.find('weather.request.attempted')
    assert.deepEqual([attempted.obj.lat, attempted.obj.lon], [36.123456, -86.678912], 'exact coordinates, debug only')
    const [sent] = log.find('weather.request.sent')
    assert.deepEqual(sent.obj, { provider: 'openweather', bucketKey: sent.obj.bucketKey, lat: 36.12, lon: -86.68 })
    assert.ok(!JSON.stringify(log.records.map((r) => r.obj)).includes(API_KEY))
    assert.ok(!JSON.stringify(log.records.map((r) => r.obj)).includes('http'))
  }))

test('coalesced burst: one sent, N coalesced with a growing waiter count', () =>
  withService(debug, async ({ service, upstream }) => {
    const log = recordingLogger()
    await Promise.all(Array.from({ length: 10 }, (_, i) => service.getWeather({ logger: log.logger }, `d${i}`, 5, 5)))
    assert.equal(upstream.count, 1)
    assert.equal(log.find('weather.request.sent').length, 1)
    const coalesced = log.find('weather.request.coalesced')
    assert.deepEqual(coalesced.map((r) => r.obj.waiters), [2, 3, 4, 5, 6, 7, 8, 9, 10])
    assert.deepEqual(Object.keys(coalesced[0].obj).sort(), ['bucketKey', 'userId', 'waiters'])
  }, answer.delayed(30)))

test('stale hit + background refresh: the caller sees hit.stale, the refresh goes to the logger option', async () => {
  const background = recordingLogger()
  await withService({ ...debug, logger: background.logger }, async ({ service, upstream }) => {
    await service.getWeather(null, 'u', 1, 1)
    service.advanceTime(600_000)
    background.records.length = 0
    const log = recordingLogger()
    await service.getWeather({ logger: log.logger }, 'u', 1, 1)
    assert.deepEqual(log.names(), ['weather.request.attempted', 'weather.cache.hit.stale'])
    assert.equal(log.find('weather.cache.hit.stale')[0].obj.ageMs, 600_000)
    await until(() => background.find('weather.request.sent').length === 1, 'the background sent event')
    assert.equal(background.records[0].self, background.logger)
    assert.equal(upstream.count, 2)
  })
})

test('429 with Retry-After: rate_limited and backoff.state at warn', () =>
  withService(debug, async ({ service }) => {
    const log = recordingLogger()
    await service.getWeather({ logger: log.logger }, 'u', 1, 1)
    assert.deepEqual(log.names(), [
      'weather.request.attempted',
      'weather.cache.miss',
      'weather.request.sent',
      'weather.rate_limited',
      'weather.backoff.state',
    ])
    const [limited] = log.find('weather.rate_limited')
    assert.deepEqual([limited.level, limited.obj], ['warn', { provider: 'openweather', retryAfterMs: 120_000 }])
    const [backoff] = log.find('weather.backoff.state')
    assert.deepEqual([backoff.level, backoff.obj], ['warn', { provider: 'openweather', scope: 'provider', backoffMs: 120_000 }])
  }, answer.rateLimited(120)))

test('network error: error.network with a code and a message, then the area backoff', async () => {
  const port = await closedPort()
  const service = new WeatherService({ apiKey: API_KEY, baseUrl: `http://127.0.0.1:${port}`, clock: 'manual', jitterRatio: 0 })
  try {
    const log = recordingLogger()
    assert.equal(await service.getWeather({ logger: log.logger }, 'u', 1, 1), null)
    assert.deepEqual(log.names().slice(-2), ['weather.error.network', 'weather.backoff.state'])
    const [error] = log.find('weather.error.network')
    assert.equal(error.level, 'warn')
    assert.equal(error.obj.code, 'ERR_UPSTREAM_NETWORK')
    assert.match(error.obj.message, /refused/i)
    assert.ok(!error.obj.message.includes(API_KEY) && !error.obj.message.includes('appid'))
    assert.deepEqual(log.find('weather.backoff.state')[0].obj, { provider: 'openweather', scope: 'area', backoffMs: 5000 })
  } finally {
    service.close()
  }
})

test('logLevel "info" (the default): debug events are never built, warn events arrive', () =>
  withService({}, async ({ service, upstream }) => {
    let loggerReads = 0
    const log = recordingLogger()
    const session = {
      userId: 'u',
      get logger() {
        loggerReads++
        return log.logger
      },
    }
    await service.getWeather(session, 1, 1) // miss: the logger is kept for possible warn events
    const readsAfterMiss = loggerReads
    for (let i = 0; i < 100; i++) await service.getWeather(session, 1, 1) // hits
    assert.equal(loggerReads, readsAfterMiss, 'hits do not even read session.logger')
    assert.deepEqual(log.records, [], 'no debug event of the miss or of the hits')
    upstream.behave(answer.status(503))
    assert.equal(await service.getWeather(session, 30, 30), null)
    assert.deepEqual(log.records.map((r) => [r.level, r.msg]), [
      ['warn', 'weather.error.network'],
      ['warn', 'weather.backoff.state'],
    ])
    assert.equal(log.records[0].obj.code, 'ERR_UPSTREAM_STATUS')
  }))

test('logLevel "silent": nothing, even on errors', () =>
  withService({ logLevel: 'silent' }, async ({ service }) => {
    const log = recordingLogger()
    await service.getWeather({ logger: log.logger }, 'u', 1, 1)
    assert.deepEqual(log.records, [])
  }, answer.status(500)))

test('a logger that throws breaks nothing (session logger and logger option)', async () => {
  const background = recordingLogger({ throws: true })
  await withService({ ...debug, logger: background.logger }, async ({ service, upstream }) => {
    const log = recordingLogger({ throws: true })
    const session = { logger: log.logger }
    assert.notEqual(await service.getWeather(session, 'u', 1, 1), null)
    assert.notEqual(await service.getWeather(session, 'u', 1, 1), null)
    assert.ok(log.records.length >= 5)
    service.advanceTime(600_000)
    await service.getWeather(null, 'v', 1, 1) // no session logger: events go to the option
    // The throws happened inside those deliveries: a fatal one would have ended the process.
    await until(() => upstream.count === 2 && background.records.length >= 3, 'background events')
    assert.notEqual(await service.getWeather(session, 'w', 1, 1), null, 'still answering')
  })
})

test('without any logger nothing is printed and nothing fails', async () => {
  // In a child process, so that whatever the addon might write to fd 1 or 2 is caught too. The
  // upstream answers the first request at latitude 5 and fails every other one.
  let answered = false
  const upstream = await startUpstream((req, res, q) => {
    if (q.lat === 5 && !answered) return (answered = true), answer.weather(req, res, q)
    answer.status(503)(req, res, q)
  })
  try {
    const script = `
      import { WeatherService } from ${JSON.stringify(new URL('../main.js', import.meta.url).href)}
      const service = new WeatherService({ apiKey: ${JSON.stringify(API_KEY)}, baseUrl: process.env.UPSTREAM, clock: 'manual', logLevel: 'debug' })
      const answers = [
        await service.getWeather(null, 'u', 1, 1),
        await service.getWeather({ logger: 'not a logger' }, 'u', 2, 2),
        await service.getForecast(null, 'v', 3, 3).catch((e) => e.code),
        typeof (await service.getWeather(null, 'w', 5, 5)),
      ]
      service.advanceTime(600_000)
      // Stale: answered at once, refreshed in the background, and that refresh fails.
      answers.push((await service.getForecast(null, 'w', 5, 5)).meta.source)
      while (service.stats().inflight > 0) await new Promise((resolve) => setTimeout(resolve, 5))
      service.close()
      process.send(answers)
    `
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, UPSTREAM: upstream.url }, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] })
    let [stdout, stderr, answers] = ['', '', null]
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('message', (m) => (answers = m))
    const [code] = await once(child, 'exit')
    assert.deepEqual({ code, stdout, stderr }, { code: 0, stdout: '', stderr: '' })
    assert.deepEqual(answers, [null, null, 'ERR_UPSTREAM_STATUS', 'object', 'stale-cache'])
    assert.equal(upstream.count, 5, 'each call and the refresh asked the upstream')
  } finally {
    await upstream.close()
  }
})

test('at warn level no event carries exact user coordinates', () =>
  withService({ logLevel: 'warn' }, async ({ service, upstream }) => {
    const log = recordingLogger()
    await service.getWeather({ logger: log.logger }, 'u', 12.345678, 45.678912)
    upstream.behave(answer.rateLimited())
    await service.getWeather({ logger: log.logger }, 'u', 22.345678, 55.678912)
    assert.ok(log.records.length >= 2)
    const text = JSON.stringify(log.records.map((r) => r.obj))
    for (const exact of ['12.345678', '45.678912', '22.345678', '55.678912']) assert.ok(!text.includes(exact), text)
    assert.ok(log.records.every((r) => r.level === 'warn'))
  }, answer.status(500)))

test('stats() identities hold after 10,000 randomized mixed requests; metricsText agrees', () =>
  withService({ initialBackoffMs: 1000, errorCooldownMs: 1000, sharedCapacity: 50, maxUsers: 40 }, async ({ service, upstream }) => {
    let seed = 7
    const random = () => ((seed = (seed * 16807) % 2147483647) / 2147483647)
    const behaviours = [answer.weather, answer.weather, answer.weather, answer.status(503), answer.rateLimited(), answer.garbage]
    let issued = 0
    let last
    const pending = []
    for (let round = 0; round < 200; round++) {
      upstream.behave(behaviours[Math.floor(random() * behaviours.length)])
      for (let i = 0; i < 50; i++) {
        // One request in ten repeats the previous one (a user asking again from the same spot).
        const repeat = i > 0 && random() < 0.1
        const user = repeat ? last.user : `user-${Math.floor(random() * 100)}`
        const lat = repeat ? last.lat : 40 + random() * 2
        const lon = repeat ? last.lon : -74 + random() * 2
        last = { user, lat, lon }
        const kind = random()
        issued++
        if (kind < 0.5) pending.push(service.getWeather(null, user, lat, lon))
        else if (kind < 0.8) pending.push(service.getForecast(null, user, lat, lon).catch(() => null))
        else if (kind < 0.9) pending.push(service.getForecast(null, user, lat, lon, { forceRefresh: true }).catch(() => null))
        else pending.push(service.warmup(user, lat, lon))
      }
      if (round % 20 === 0) await Promise.all(pending.splice(0))
      service.advanceTime(Math.floor(random() * 90_000))
    }
    await Promise.all(pending)
    await until(() => service.stats().inflight === 0, 'background refreshes')
    const s = service.stats()
    assert.equal(s.requests, issued)
    assert.equal(s.requests, s.userHits + s.sharedHits + s.staleHits + s.misses + s.coalesced + s.rejected)
    assert.equal(s.misses + s.backgroundRefreshes, s.fetches + s.tierHits + s.budgetRejected + s.inflight)
    assert.equal(s.upstreamRequests, upstream.count, 'every upstream request was counted once')
    for (const key of ['userHits', 'sharedHits', 'staleHits', 'misses', 'coalesced', 'rejected', 'upstreamErrors', 'rateLimited', 'backgroundRefreshes', 'staleIfError']) {
      assert.ok(s[key] > 0, `${key} was exercised`)
    }
    assert.ok(s.sharedEntries <= 50 && s.users <= 40, 'bounded by sharedCapacity and maxUsers')
    assert.equal(s.inflight, 0)

    const values = parsePrometheus(service.metricsText())
    assert.equal(values.get('weather_cache_requests_total'), s.requests)
    assert.equal(values.get('weather_cache_user_hits_total'), s.userHits)
    assert.equal(values.get('weather_cache_upstream_requests_total'), s.upstreamRequests)
    assert.equal(values.get('weather_cache_shared_entries'), s.sharedEntries)
    assert.equal(values.get('weather_cache_backoff_until_seconds'), s.backoffUntil / 1000)
    assert.ok(!service.metricsText().includes(API_KEY))
    assert.ok(!JSON.stringify(s).includes(API_KEY))
  }))

test('stats(): bad calls are not counted; backoffUntil reports the cooldown', () =>
  withService({}, async ({ service }) => {
    await service.getWeather(null, '', 1, 1).catch(() => {})
    await service.getWeather(null, 'u', 100, 1).catch(() => {})
    assert.equal(service.stats().requests, 0)
    await service.getWeather(null, 'u', 1, 1)
    const s = service.stats()
    assert.deepEqual([s.requests, s.misses, s.rateLimited, s.rejected], [1, 1, 1, 0])
    assert.ok(s.backoffUntil > Date.now() + 50_000)
    await service.getWeather(null, 'u', 2, 2)
    assert.equal(service.stats().rejected, 1)
  }, answer.rateLimited()))
