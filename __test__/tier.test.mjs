// The shared tier on a real redis-server: N instances (several in their own processes) cost
// the upstream what one does, share 429s and budgets, and ride out Redis dying and coming back.
import assert from 'node:assert/strict'
import net from 'node:net'
import { after, before, test } from 'node:test'

import { WeatherService, distanceKm } from '../main.js'
import { processInstance, recordingLogger, until } from './helpers.mjs'
import { redisCliInstalled, redisServerInstalled, startRedis, startRedisCluster } from '../lib/local-redis.mjs'
import { API_KEY, answer, metNorwayBody, startUpstream } from './upstream.mjs'
import { startBlackHole, startRelay } from './relay.mjs'

// Where the binary is missing the tests skip loudly, unless CI is set: there they must run.
const redisAvailable = redisServerInstalled()
if (!redisAvailable && process.env.CI) throw new Error('CI is set but redis-server is missing: .ci/run must install it')
if (!redisAvailable) console.warn('SKIPPED: redis-server is not installed (apt-get install redis-server); shared-tier tests did not run')
const skip = !redisAvailable && 'redis-server is not installed'
// A Redis Cluster also needs redis-cli (Debian's redis-tools), under the same rule.
const cliAvailable = redisCliInstalled()
if (!cliAvailable && process.env.CI) throw new Error('CI is set but redis-cli is missing: .ci/run must install redis-tools')
if (!cliAvailable) console.warn('SKIPPED: redis-cli is not installed (apt-get install redis-tools); Redis Cluster tests did not run')
const skipCluster = skip || (!cliAvailable && 'redis-cli is not installed')
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Like `until`, for an async condition. */
async function untilAsync(condition, what, timeoutMs = 5000) {
  const started = Date.now()
  while (!(await condition())) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`)
    await sleep(5)
  }
}

/** Entries the tier holds under `prefix` (every tile's payloads). */
async function storedEntries(prefix) {
  const keys = (await redis.command('KEYS', `{${prefix}:*:v2:payloads`)).split('\r\n').filter((l) => l.startsWith('{'))
  let n = 0
  for (const key of keys) n += Number(/^:(\d+)/.exec(await redis.command('HLEN', key))?.[1] ?? 0)
  return n
}

let redis
before(async () => {
  if (!skip) redis = await startRedis()
})
after(async () => {
  await redis?.stop()
})

/** A fresh key prefix per test: tests share one server but never each other's keys. */
let namespaces = 0
const namespace = () => `t${process.pid}-${++namespaces}`

test("MET Norway's Expires and Last-Modified travel through Redis: B neither refetches before Expires nor refreshes unconditionally", { skip }, async () => {
  const lastModified = 'Sun, 22 Nov 2026 09:55:12 GMT'
  const met = await startUpstream((req, res, q) => {
    const date = Math.floor(Date.now() / 1000) * 1000
    const headers = { Date: new Date(date).toUTCString(), Expires: new Date(date + 1_800_000).toUTCString(), 'Last-Modified': lastModified }
    if (q.ifModifiedSince === lastModified) return res.writeHead(304, headers).end()
    const body = metNorwayBody(-3.2, 'Snow')
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), ...headers }).end(body)
  })
  const prefix = namespace()
  const options = {
    providers: [{ name: 'met-norway', userAgent: 'acme-dashboard/2.1 ops@acme.example', baseUrl: met.url }],
    clock: 'manual',
    redis: { url: redis.url, keyPrefix: prefix },
  }
  const [a, b] = [new WeatherService(options), new WeatherService(options)]
  try {
    assert.equal((await a.getForecast(null, 'alice', 59.91273, 10.74609)).meta.source, 'network')
    await untilAsync(async () => (await storedEntries(prefix)) === 1, 'the write-through')
    // 20 minutes on B's clock: past the 10-minute TTL, before Expires. Fresh from Redis.
    b.advanceTime(20 * 60_000)
    const held = await b.getForecast(null, 'bob', 59.91273, 10.74609)
    assert.deepEqual([held.meta.source, held.meta.provider, held.summary.tempC], ['cache', 'met-norway', -3])
    assert.equal(b.stats().tierHits, 1)
    assert.equal(met.count, 1, 'B did not ask MET Norway before Expires')
    // Past Expires: B's refresh is conditional, with A's Last-Modified; the 304 renews it.
    b.advanceTime(11 * 60_000)
    const renewed = await b.getForecast(null, 'bob', 59.91273, 10.74609, { forceRefresh: true })
    assert.deepEqual([renewed.meta.source, renewed.summary.tempC], ['network', -3])
    assert.deepEqual([met.count, met.requests[1].ifModifiedSince], [2, lastModified])
  } finally {
    a.close()
    b.close()
    await met.close()
  }
})

test('four processes, 250 simultaneous requests each for one spot: one upstream call, 1,000 equal answers', { skip }, async () => {
  const upstream = await startUpstream(answer.delayed(500, answer.fixed(17.4, 'Rain')))
  const options = { apiKey: API_KEY, baseUrl: upstream.url, redis: { url: redis.url, keyPrefix: namespace() } }
  const instances = await Promise.all([0, 1, 2, 3].map(() => processInstance(options)))
  try {
    const bursts = await Promise.all(instances.map((instance, i) => instance.call('burst', { count: 250, lat: 48.8566, lon: 2.3522, user: `p${i}` })))
    const results = bursts.flatMap((b) => b.results)
    assert.equal(results.length, 1000)
    assert.deepEqual(results.filter((r) => r.error), [])
    assert.ok(results.every((r) => r.summary.tempC === 17 && r.summary.condition === 'Rain'), 'equal answers')
    assert.equal(upstream.count, 1, 'exactly one upstream call')
    const stats = await Promise.all(instances.map((instance) => instance.call('stats')))
    assert.equal(stats.reduce((n, s) => n + s.fetches, 0), 1)
    assert.equal(stats.reduce((n, s) => n + s.tierHits, 0), 3, 'the three others were answered by the tier')
    for (const s of stats) assert.equal(s.misses + s.backgroundRefreshes, s.fetches + s.tierHits + s.budgetRejected + s.inflight)
  } finally {
    for (const instance of instances) instance.kill()
    await upstream.close()
  }
})

test("instance A fetches; a user of instance B 3 km away is answered from Redis, no upstream call", { skip }, async () => {
  const upstream = await startUpstream(answer.fixed(20.6, 'Clouds'))
  const prefix = namespace()
  const options = { apiKey: API_KEY, baseUrl: upstream.url, redis: { url: redis.url, keyPrefix: prefix } }
  const [a, b] = [new WeatherService(options), new WeatherService(options)]
  try {
    const first = await a.getForecast(null, 'alice', 48.8566, 2.3522)
    assert.equal(first.meta.source, 'network')
    // The write-through runs in the background, just after A's answer: wait for it in Redis.
    await untilAsync(async () => (await storedEntries(prefix)) === 1, 'the write-through')
    const second = await b.getForecast(null, 'bob', 48.8566 + 0.027, 2.3522) // ~3 km north
    assert.equal(second.meta.source, 'cache')
    assert.equal(second.meta.provider, 'openweather')
    assert.deepEqual({ ...second.summary }, { condition: 'Clouds', tempC: 21, tempF: 69 })
    assert.equal(upstream.count, 1, 'no upstream call for B')
    assert.equal(b.stats().tierHits, 1)
    // B copied it into its local store: the next request is a local hit.
    assert.equal((await b.getForecast(null, 'bob', 48.8566 + 0.027, 2.3522)).meta.source, 'cache')
    assert.equal(b.stats().sharedHits, 1)
    assert.equal(b.stats().tierHits, 1, 'no second trip to Redis')
  } finally {
    a.close()
    b.close()
    await upstream.close()
  }
})

test('forecast products travel through Redis: B serves A\'s hourly, daily, alerts and next hour without a call (issue 23)', { skip }, async () => {
  const upstream = await startUpstream(answer.forecast(7.25, 'Rain'))
  const prefix = namespace()
  const options = { apiKey: API_KEY, baseUrl: upstream.url, redis: { url: redis.url, keyPrefix: prefix } }
  const [a, b] = [new WeatherService(options), new WeatherService(options)]
  const include = ['details', 'hourly', 'daily', 'alerts', 'nextHour']
  try {
    assert.ok(await a.getWeather(null, 'glasses', 48.8566, 2.3522), 'a plain getWeather on A')
    await untilAsync(async () => (await storedEntries(prefix)) === 1, 'the write-through')
    const fromA = await a.getForecast(null, 'glasses', 48.8566, 2.3522, { include })
    const fromB = await b.getForecast(null, 'drone', 48.8566 + 0.027, 2.3522, { include })
    assert.equal(fromB.meta.source, 'cache')
    assert.equal(upstream.count, 1, 'one call for both instances and every product')
    assert.equal(fromB.hourly.length, 48)
    for (const product of include) assert.deepEqual(fromB[product], fromA[product], product)
  } finally {
    a.close()
    b.close()
    await upstream.close()
  }
})

test('a 429 with Retry-After: 30 seen by A: B, C and D make no upstream call for the window', { skip }, async () => {
  const upstream = await startUpstream(answer.rateLimited(30))
  const prefix = namespace()
  const options = { apiKey: API_KEY, baseUrl: upstream.url, redis: { url: redis.url, keyPrefix: prefix } }
  const [a, b, c, d] = [0, 1, 2, 3].map(() => new WeatherService(options))
  try {
    const limited = await a.getForecast(null, 'u', 10, 10).catch((e) => e)
    assert.equal(limited.code, 'ERR_RATE_LIMITED')
    assert.equal(limited.retryAfterMs, 30_000)
    upstream.behave(answer.weather) // a call now would succeed, and be counted
    // The cooldown holds until when (the Redis server's ms), with no TTL of its own.
    const serverMs = async () => {
      const [seconds, micros] = (await redis.command('TIME')).split('\r\n').filter((l) => /^\d+$/.test(l))
      return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000)
    }
    const cooling = async () => Number((await redis.command('GET', `{${prefix}}:cooldown:openweather`)).split('\r\n')[1]) - (await serverMs())
    await untilAsync(async () => (await cooling()) > 25_000, 'the cooldown in Redis')
    for (const [i, service] of [b, c, d].entries()) {
      const error = await service.getForecast(null, 'v', -20 - i * 10, 100 + i * 10).catch((e) => e)
      assert.equal(error.code, 'ERR_RATE_LIMITED', `instance ${i}`)
      assert.ok(error.retryAfterMs > 25_000 && error.retryAfterMs <= 30_000, String(error.retryAfterMs))
      // And now each knows it locally: refused without asking anyone.
      await assert.rejects(service.getForecast(null, 'w', 40, -3), { code: 'ERR_RATE_LIMITED' })
      assert.equal(service.stats().rejected, 1)
    }
    assert.equal(upstream.count, 1, 'nobody else called upstream')
  } finally {
    for (const service of [a, b, c, d]) service.close()
    await upstream.close()
  }
})

test('budget perMinute: 5 over three instances and 30 far-apart areas: at most 5 upstream calls', { skip }, async () => {
  // The minute window is the Redis server's: start well inside one.
  const seconds = () => redis.command('TIME').then((t) => Number(t.split('\r\n')[2]) % 60)
  if ((await seconds()) > 40) await sleep((61 - (await seconds())) * 1000)
  const upstream = await startUpstream(answer.weather)
  const options = { apiKey: API_KEY, baseUrl: upstream.url, redis: { url: redis.url, keyPrefix: namespace() }, budget: { perMinute: 5 } }
  const instances = [0, 1, 2].map(() => new WeatherService(options))
  try {
    const answers = await Promise.all(
      Array.from({ length: 30 }, (_, i) => instances[i % 3].getForecast(null, `u${i}`, -60 + i * 4, -170 + i * 11).catch((e) => e)),
    )
    const served = answers.filter((a) => a.meta)
    const refused = answers.filter((a) => a.code === 'ERR_BUDGET_EXHAUSTED')
    assert.equal(upstream.count, 5)
    assert.equal(served.length, 5)
    assert.equal(refused.length, 25)
    assert.ok(refused.every((e) => e.retryAfterMs > 0 && e.retryAfterMs <= 60_000 && e.provider === 'openweather'))
    const stats = instances.map((s) => s.stats())
    assert.equal(stats.reduce((n, s) => n + s.budgetRejected, 0) + stats.reduce((n, s) => n + s.rejected, 0), 25)
    // getWeather resolves null, as for a rate limit.
    assert.equal(await instances[0].getWeather(null, 'late', 33, 33), null)
  } finally {
    for (const service of instances) service.close()
    await upstream.close()
  }
})

test('kill -9 of redis-server during a burst: every call settles in time, answers keep coming; a restart brings tier hits back', { skip }, async () => {
  const upstream = await startUpstream(answer.delayed(30))
  const log = recordingLogger()
  const requestTimeoutMs = 2000
  const options = { apiKey: API_KEY, baseUrl: upstream.url, requestTimeoutMs, redis: { url: redis.url, keyPrefix: namespace(), timeoutMs: 100 }, logger: log.logger }
  const [a, b] = [new WeatherService(options), new WeatherService(options)]
  const timed = async (promise) => {
    const started = Date.now()
    const value = await promise
    return { value, ms: Date.now() - started }
  }
  try {
    let area = 0
    const burst = (service, n) => Promise.all(Array.from({ length: n }, () => timed(service.getWeather(null, `u${area}`, -50 + (area % 100), -170 + 3 * (area++ % 100)))))
    const before = await burst(a, 20)
    assert.ok(before.every((r) => r.value), 'answers before')
    const during = burst(a, 40)
    await sleep(5)
    await redis.kill()
    const results = [...(await during), ...(await burst(a, 40)), ...(await burst(b, 40))]
    for (const r of results) {
      assert.ok(r.value, 'answered from the upstream with Redis gone')
      assert.ok(r.ms <= requestTimeoutMs + 100 + 300, `settled in ${r.ms} ms`)
    }
    assert.ok(a.stats().tierErrors > 0 && a.stats().tierUp === false)
    await until(() => log.find('weather.tier.degraded').length >= 2, 'a degraded event per instance')
    assert.equal(log.find('weather.tier.degraded')[0].level, 'warn')

    await redis.start()
    // Without restarting the services, the tier comes back: B is answered from A's entries.
    const hitsBefore = b.stats().tierHits
    const started = Date.now()
    while (b.stats().tierHits === hitsBefore) {
      assert.ok(Date.now() - started < 20_000, 'tier hits never came back')
      const spot = 1000 + Math.floor(Math.random() * 1e6)
      await a.getWeather(null, 'a', (spot % 160) - 80, ((spot * 7) % 340) - 170)
      await sleep(50)
      await b.getWeather(null, 'b', (spot % 160) - 80, ((spot * 7) % 340) - 170)
    }
    await until(() => log.find('weather.tier.restored').length >= 1, 'the restored event')
    assert.equal(log.find('weather.tier.restored')[0].level, 'info')
    assert.equal(log.find('weather.tier.restored')[0].obj.tier, `127.0.0.1:${redis.port}/0`)
    assert.equal(b.stats().tierUp, true)
  } finally {
    a.close()
    b.close()
    await upstream.close()
    await redis.start() // for the tests after this one, if it failed half-way
  }
})

test("the lease holder's process is killed mid-fetch: the others fetch once the lease expires", { skip }, async () => {
  let calls = 0
  // The first call never answers (its process dies); later ones answer at once.
  const upstream = await startUpstream((req, res, q) => (++calls === 1 ? undefined : answer.fixed(5)(req, res, q)))
  const options = { apiKey: API_KEY, baseUrl: upstream.url, requestTimeoutMs: 1500, redis: { url: redis.url, keyPrefix: namespace(), timeoutMs: 100 } }
  const holder = await processInstance(options)
  const waiter = new WeatherService(options)
  try {
    holder.call('burst', { count: 1, lat: 30, lon: 30 }).catch(() => {})
    await until(() => upstream.count === 1, 'the holder fetching')
    const started = Date.now()
    const answerPromise = waiter.getForecast(null, 'w', 30.001, 30.001)
    await sleep(200)
    holder.kill()
    await holder.exited
    const result = await answerPromise
    const waited = Date.now() - started
    assert.equal(result.meta.source, 'network')
    assert.equal(upstream.count, 2)
    assert.ok(waited >= 1000, `waited for the lease (${waited} ms)`)
    assert.ok(waited < 1500 + 300 + 1500 + 1000, `but not forever (${waited} ms)`)
  } finally {
    holder.kill()
    waiter.close()
    await upstream.close()
  }
})

test('a password-protected Redis: the password is in no error, event, metric or result', { skip }, async () => {
  const password = 'Sup3r-Secret-Pa55'
  const secured = await startRedis({ password })
  const upstream = await startUpstream(answer.weather)
  const log = recordingLogger()
  const wrong = `redis://:Wr0ng-${password}@127.0.0.1:${secured.port}/0`
  try {
    const denied = new WeatherService({ apiKey: API_KEY, baseUrl: upstream.url, redis: wrong, logLevel: 'debug', logger: log.logger })
    const weather = await denied.getForecast({ logger: log.logger }, 'u', 1, 1)
    assert.equal(weather.meta.source, 'network', 'served without the tier')
    await until(() => log.find('weather.tier.degraded').length === 1, 'the degraded event')
    const everything = JSON.stringify([log.records.map((r) => [r.msg, r.obj]), denied.stats(), denied.metricsText(), weather])
    assert.ok(!everything.includes(password) && !everything.includes('Pa55'), everything)
    assert.match(JSON.stringify(log.find('weather.tier.degraded')[0].obj), /127\.0\.0\.1/)
    denied.close()
    const allowed = new WeatherService({ apiKey: API_KEY, baseUrl: upstream.url, redis: secured.url })
    await allowed.getForecast(null, 'u', 2, 2)
    assert.equal(allowed.stats().tierUp, true)
    assert.equal(allowed.stats().tierErrors, 0)
    allowed.close()
    for (const url of [`http://u:${password}@x`, `redis://:${password}@/0`, `redis://:${password}@h/x`]) {
      assert.throws(() => new WeatherService({ redis: url }), (e) => e.code === 'ERR_INVALID_ARG_VALUE' && !e.message.includes(password) && /options\.redis/.test(e.message))
    }
  } finally {
    await secured.stop()
    await upstream.close()
  }
})

test('redis and budget options are checked', () => {
  const cases = [
    [{ redis: 42 }, 'ERR_INVALID_ARG_TYPE'],
    [{ redis: {} }, 'ERR_INVALID_ARG_TYPE'],
    [{ redis: { url: 'redis://h', keyPrefix: 'a{b}' } }, 'ERR_INVALID_ARG_VALUE'],
    [{ redis: { url: 'redis://h', timeoutMs: 0 } }, 'ERR_OUT_OF_RANGE'],
    [{ budget: 5 }, 'ERR_INVALID_ARG_TYPE'],
    [{ budget: { perMinute: 0 } }, 'ERR_OUT_OF_RANGE'],
    [{ budget: { perDay: 1.5 } }, 'ERR_OUT_OF_RANGE'],
    [{ budget: { whenRedisDown: 'open' } }, 'ERR_INVALID_ARG_VALUE'],
  ]
  for (const [options, code] of cases) assert.throws(() => new WeatherService(options), { code }, JSON.stringify(options))
  new WeatherService({ redis: null, budget: { perMinute: 60, perDay: 1000, whenRedisDown: 'closed' } }).close()
})

test('without Redis the budget holds per process, in service-clock minutes; getWeather resolves null', async () => {
  const upstream = await startUpstream(answer.weather)
  const service = new WeatherService({ apiKey: API_KEY, baseUrl: upstream.url, clock: 'manual', budget: { perMinute: 2 } })
  try {
    assert.ok(await service.getWeather(null, 'u', 10, 10))
    assert.ok(await service.getWeather(null, 'u', 20, 20))
    const refused = await service.getForecast(null, 'u', 30, 30).catch((e) => e)
    assert.equal(refused.code, 'ERR_BUDGET_EXHAUSTED')
    assert.ok(refused.retryAfterMs > 0 && refused.retryAfterMs <= 60_000)
    assert.equal(await service.getWeather(null, 'u', 40, 40), null, 'refused at once: the budget is known spent')
    assert.equal(upstream.count, 2)
    // Cached areas are still served.
    assert.ok(await service.getWeather(null, 'v', 10, 10))
    service.advanceTime(60_000)
    assert.ok(await service.getWeather(null, 'u', 30, 30), 'a new minute')
    const s = service.stats()
    assert.equal(s.budgetRejected, 1)
    assert.equal(s.misses + s.backgroundRefreshes, s.fetches + s.tierHits + s.budgetRejected + s.inflight)
  } finally {
    service.close()
    await upstream.close()
  }
})

test('whenRedisDown: "closed" makes no upstream call while Redis is unreachable; cache still answers', async () => {
  const upstream = await startUpstream(answer.weather)
  const closedPort = 'redis://127.0.0.1:9/0'
  const service = new WeatherService({ apiKey: API_KEY, baseUrl: upstream.url, redis: { url: closedPort, timeoutMs: 50 }, budget: { perDay: 1000, whenRedisDown: 'closed' } })
  const local = new WeatherService({ apiKey: API_KEY, baseUrl: upstream.url, redis: { url: closedPort, timeoutMs: 50 }, budget: { perDay: 1000 } })
  try {
    const error = await service.getForecast(null, 'u', 1, 1).catch((e) => e)
    assert.equal(error.code, 'ERR_BUDGET_EXHAUSTED')
    assert.equal(upstream.count, 0)
    assert.equal((await local.getForecast(null, 'u', 1, 1)).meta.source, 'network', '"local" (the default) goes on alone')
    assert.equal(upstream.count, 1)
  } finally {
    service.close()
    local.close()
    await upstream.close()
  }
})

// Found in review: every waiter is answered within its radius; polar points never reach Redis;
// a slow Redis keeps the deadline; a day's budget of 1 is all reserve; close() lets Redis go.

const near = (forecast, lat, lon) => distanceKm(lat, lon, forecast.meta.location.lat, forecast.meta.location.lon)

test("each waiter of a flight gets an entry within its own radius", { skip }, async () => {
  const upstream = await startUpstream(answer.weather)
  const prefix = namespace()
  const options = { apiKey: API_KEY, baseUrl: upstream.url, redis: { url: redis.url, keyPrefix: prefix } }
  const [a, b] = [new WeatherService(options), new WeatherService(options)]
  try {
    await a.getForecast(null, 'a', 0, -0.03)
    await a.getForecast(null, 'a', 0, 0.07)
    await untilAsync(async () => (await storedEntries(prefix)) === 2, 'the write-throughs')
    const spots = [[0, 0], [0, 0.04]] // one flight on B: 4.4 km apart
    const answers = await Promise.all(spots.map(([lat, lon], i) => b.getForecast(null, `b${i}`, lat, lon)))
    answers.forEach((answer, i) => assert.ok(near(answer, ...spots[i]) <= 5, `waiter ${i}: ${near(answer, ...spots[i])} km`))
    assert.equal(upstream.count, 2, 'both answered by A\'s entries')
  } finally {
    a.close()
    b.close()
    await upstream.close()
  }
})

test('a flight that fetches at a waiter\'s spot still answers every waiter within its radius', { skip }, async () => {
  const slow = await startUpstream(answer.delayed(600))
  const fast = await startUpstream(answer.weather)
  const prefix = namespace()
  const a = new WeatherService({ apiKey: API_KEY, baseUrl: slow.url, redis: { url: redis.url, keyPrefix: prefix } })
  const b = new WeatherService({ apiKey: API_KEY, baseUrl: fast.url, redis: { url: redis.url, keyPrefix: prefix } })
  try {
    const holder = a.getForecast(null, 'a', 0, -0.03) // A holds a lease there for 600 ms
    await until(() => slow.count === 1, 'A fetching')
    const spots = [[0, 0], [0, 0.03], [0, 0.044], [0, -0.04]]
    const answers = await Promise.all(spots.map(([lat, lon], i) => b.getForecast(null, `b${i}`, lat, lon)))
    answers.forEach((answer, i) => assert.ok(near(answer, ...spots[i]) <= 5, `waiter ${i}: ${near(answer, ...spots[i])} km`))
    await holder
    assert.ok(fast.count <= 2, `B made ${fast.count} calls`)
  } finally {
    a.close()
    b.close()
    await slow.close()
    await fast.close()
  }
})

test('a request near a pole never reaches Redis (nor opens its circuit)', { skip }, async () => {
  const upstream = await startUpstream(answer.weather)
  const log = recordingLogger()
  const service = new WeatherService({ apiKey: API_KEY, baseUrl: upstream.url, redis: { url: redis.url, keyPrefix: namespace() }, logger: log.logger })
  try {
    for (const [lat, lon] of [[85.0512, 10], [85.06, 60], [89.9, 120], [-86, -100]]) assert.equal((await service.getForecast(null, 'u', lat, lon)).meta.source, 'network')
    assert.equal(service.stats().tierErrors, 0)
    assert.equal(service.stats().tierUp, true)
    assert.deepEqual(log.find('weather.tier.degraded'), [])
  } finally {
    service.close()
    await upstream.close()
  }
})

test('a slow Redis (each answer within timeoutMs): every request reaches the upstream after at most two round trips, each within its deadline', { skip }, async () => {
  // Every Redis answer 60 ms late (timeoutMs is 150: slow, not failing, even on a loaded box).
  const relay = await startRelay(redis.port)
  relay.setLatency(60)
  // The upstream never answers: each request ends with the upstream's own timeout. When it is
  // asked, note how many Redis round trips the service made before.
  let service
  const tripsAtCall = []
  const upstream = await startUpstream(() => tripsAtCall.push(service.stats().tier.roundTrips))
  const [requestTimeoutMs, timeoutMs] = [1000, 150]
  try {
    for (const [i, spot] of [[10, 10], [20, 20], [30, 30]].entries()) {
      // A service of its own per request: nothing in the background (a renewal, a lease given
      // back) is counted with the request's own round trips.
      service = new WeatherService({ apiKey: API_KEY, baseUrl: upstream.url, requestTimeoutMs, redis: { url: relay.url, keyPrefix: namespace(), timeoutMs } })
      const started = Date.now()
      const error = await service.getForecast(null, `u${i}`, ...spot, { forceRefresh: true }).catch((e) => e)
      assert.equal(error.code, 'ERR_UPSTREAM_TIMEOUT', 'ended by the upstream, not by Redis')
      assert.equal(upstream.count, i + 1, 'the request reached the upstream')
      // At most a lookup and an admission, each with its own deadline, before the call (the
      // lookup is skipped if the new service's connection is still being made); nothing after
      // it is waited for (the lease goes back in the background).
      assert.ok(tripsAtCall[i] >= 1 && tripsAtCall[i] <= 2, `${tripsAtCall[i]} round trips before the call`)
      // Slow is not failing: no operation missed its deadline, the circuit never opened.
      const stats = service.stats()
      assert.deepEqual([stats.tierErrors, stats.tierUp], [0, true])
      assert.equal(stats.tier.roundTripHistogram.find((b) => b.leMs === 25).count, 0, 'every round trip took the relay\'s 60 ms')
      // A guard against hangs only: the bound is the deadlines above, not a wall-clock claim.
      assert.ok(Date.now() - started < requestTimeoutMs + 2 * timeoutMs + 1000, `took ${Date.now() - started} ms`)
      service.close()
    }
  } finally {
    service?.close()
    await upstream.close()
    await relay.close()
  }
})

test('a day\'s budget of 1 is all reserve: background refreshes never spend it', async () => {
  const upstream = await startUpstream(answer.weather)
  const service = new WeatherService({ apiKey: API_KEY, baseUrl: upstream.url, clock: 'manual', budget: { perDay: 1 } })
  try {
    await service.getWeather(null, 'u', 10, 10)
    for (let i = 0; i < 4; i++) {
      service.advanceTime(11 * 60_000) // stale: each request would refresh in the background
      await service.getWeather(null, 'u', 10, 10)
      await until(() => service.stats().inflight === 0, 'the refresh attempt')
    }
    assert.equal(upstream.count, 1)
  } finally {
    service.close()
    await upstream.close()
  }
})

test('close() lets go of the Redis connection; the restored event names the tier', { skip }, async () => {
  const upstream = await startUpstream(answer.weather)
  const clients = async () => (await redis.command('CLIENT', 'LIST')).split('\n').filter((l) => l.includes('cmd=')).length
  const before = await clients()
  const services = [0, 1, 2].map(() => new WeatherService({ apiKey: API_KEY, baseUrl: upstream.url, redis: { url: redis.url, keyPrefix: namespace() } }))
  try {
    for (const [i, s] of services.entries()) await s.getForecast(null, 'u', i, i)
    assert.ok((await clients()) >= before + 3)
    for (const s of services) s.close()
    await untilAsync(async () => (await clients()) <= before, 'connections closed', 5000)
  } finally {
    for (const s of services) s.close()
    await upstream.close()
  }
})

// Production failures (issue 20): each test below failed on the code before the fix.

test('a slow but healthy Redis never bypasses the shared budget: a waiter keeps its own time for admission', { skip }, async () => {
  const upstream = await startUpstream(answer.delayed(2000))
  const relay = await startRelay(redis.port)
  relay.setLatency(8) // every Redis reply 8 ms late: slow, not down
  const options = { apiKey: API_KEY, baseUrl: upstream.url, redis: { url: relay.url, keyPrefix: namespace() }, budget: { perDay: 1 } }
  const [a, b] = [new WeatherService(options), new WeatherService(options)]
  try {
    const first = a.getForecast(null, 'a', 45, 5)
    await until(() => upstream.count === 1, 'A fetching')
    // B, 150 m away, waits on A's lease (2 s, many polls) and is answered by A's landing.
    const second = await b.getForecast(null, 'b', 45.001, 5.001).catch((e) => e)
    assert.equal((await first).meta.source, 'network')
    assert.equal(upstream.count, 1, 'the day budget of 1 holds across both instances')
    assert.equal(second.meta?.source, 'cache', `B: ${second.code ?? second.meta?.source}`)
    assert.deepEqual([a.stats().tierUp, b.stats().tierUp], [true, true])
  } finally {
    a.close()
    b.close()
    await upstream.close()
    await relay.close()
  }
})

test('close() mid-fetch gives the lease back: another instance takes over at once, not after a lease', { skip }, async () => {
  let calls = 0
  // The first call never answers; later ones answer at once.
  const upstream = await startUpstream((req, res, q) => (++calls === 1 ? undefined : answer.fixed(5)(req, res, q)))
  const requestTimeoutMs = 5000 // a lease: 5 s + 3 x timeoutMs
  const options = { apiKey: API_KEY, baseUrl: upstream.url, requestTimeoutMs, redis: { url: redis.url, keyPrefix: namespace() } }
  const [a, b] = [new WeatherService(options), new WeatherService(options)]
  try {
    const first = a.getForecast(null, 'a', 30, 30).catch((e) => e)
    await until(() => upstream.count === 1, 'A fetching')
    // Whether B meets A's lease before or after the close, it must not wait for the lease to
    // expire: the close gives it back.
    const second = b.getForecast(null, 'b', 30.001, 30.001)
    a.close() // a rolling deploy stops A mid-fetch
    const closedAt = Date.now()
    assert.equal((await first).code, 'ERR_SERVICE_CLOSED')
    const result = await second
    const waited = Date.now() - closedAt
    assert.equal(result.meta.source, 'network')
    assert.equal(upstream.count, 2)
    assert.ok(waited < requestTimeoutMs / 2, `B waited ${waited} ms after A closed (a lease is ${requestTimeoutMs + 300} ms)`)
  } finally {
    a.close()
    b.close()
    await upstream.close()
  }
})

test('a failover flight longer than a lease keeps it: the other instance waits, one call per provider', { skip }, async () => {
  const hanging = await startUpstream(answer.hang) // OpenWeather: times out after requestTimeoutMs
  const slow = await startUpstream(answer.delayed(800)) // Open-Meteo: answers late
  const options = {
    apiKey: API_KEY,
    providers: [{ name: 'openweather', baseUrl: hanging.url }, { name: 'open-meteo', baseUrl: slow.url }],
    requestTimeoutMs: 1000, // a lease: 1,000 + 3 x 100 ms; the flight: 1,000 + 800 ms
    redis: { url: redis.url, keyPrefix: namespace() },
  }
  const [a, b] = [new WeatherService(options), new WeatherService(options)]
  try {
    const first = a.getForecast(null, 'a', -10, 120)
    await until(() => hanging.count === 1, 'A asking OpenWeather')
    const second = await b.getForecast(null, 'b', -10.001, 120.001)
    assert.equal((await first).meta.provider, 'open-meteo')
    assert.deepEqual([second.meta.source, second.meta.provider], ['cache', 'open-meteo'])
    assert.deepEqual([hanging.count, slow.count], [1, 1], 'one call to each provider, as one flight makes')
  } finally {
    a.close()
    b.close()
    await hanging.close()
    await slow.close()
  }
})

test('lease tokens come from the OS\'s randomness: two leases of one instance share nothing', { skip }, async () => {
  const upstream = await startUpstream(answer.hang)
  const prefix = namespace()
  const service = new WeatherService({ apiKey: API_KEY, baseUrl: upstream.url, redis: { url: redis.url, keyPrefix: prefix } })
  try {
    const pending = [service.getForecast(null, 'a', 10, 10), service.getForecast(null, 'b', -40, 120)].map((p) => p.catch((e) => e))
    await until(() => upstream.count === 2, 'both fetching (each holds a lease)')
    const tokens = []
    const keys = (await redis.command('KEYS', `{${prefix}:*:v2:owners`)).split('\r\n').filter((l) => l.startsWith('{'))
    for (const key of keys) {
      const fields = (await redis.command('HGETALL', key)).split('\r\n').filter((l) => l && !/^[*$]/.test(l))
      for (let i = 1; i < fields.length; i += 2) tokens.push(fields[i].split(' ')[0])
    }
    assert.equal(tokens.length, 2)
    for (const token of tokens) assert.match(token, /^[0-9a-f]{32}$/, '128 random bits')
    assert.notEqual(tokens[0].slice(0, 8), tokens[1].slice(0, 8), 'nothing in common (no instance id, no pid, no clock)')
    service.close()
    await Promise.all(pending)
  } finally {
    service.close()
    await upstream.close()
  }
})

test('a Redis Cluster: four processes, 250 simultaneous requests each for one spot, one upstream call; a continent spreads over every master', { skip: skipCluster }, async () => {
  const cluster = await startRedisCluster()
  const upstream = await startUpstream(answer.delayed(500, answer.fixed(17.4, 'Rain')))
  const options = { apiKey: API_KEY, baseUrl: upstream.url, redis: { url: cluster.url, keyPrefix: namespace() } }
  const instances = await Promise.all([0, 1, 2, 3].map(() => processInstance(options)))
  try {
    const bursts = await Promise.all(instances.map((instance, i) => instance.call('burst', { count: 250, lat: 48.8566, lon: 2.3522, user: `p${i}` })))
    const results = bursts.flatMap((b) => b.results)
    assert.deepEqual(results.filter((r) => r.error), [])
    assert.equal(upstream.count, 1, 'exactly one upstream call')
    const stats = await Promise.all(instances.map((instance) => instance.call('stats')))
    assert.equal(stats.reduce((n, s) => n + s.tierHits, 0), 3, 'the three others were answered by the tier')
    // A fleet over Europe (one request per 2.5 degrees): each tile's keys land on some master,
    // and every master gets a share.
    upstream.behave(answer.weather)
    const spots = Array.from({ length: 48 }, (_, i) => [36 + 2.5 * (i % 12), -10 + 2.5 * Math.floor(i / 12) * 4])
    await Promise.all(spots.map(([lat, lon], i) => instances[i % 4].call('burst', { count: 1, lat, lon, user: `f${i}` })))
    const counts = await cluster.keyCounts()
    assert.ok(counts.every((n) => n > 0), `keys per master: ${counts}`)
  } finally {
    for (const instance of instances) instance.kill()
    await upstream.close()
    await cluster.stop()
  }
})

test('an area failing for one instance cools down for all: four instances make one call per window between them', { skip }, async () => {
  const upstream = await startUpstream(answer.status(503))
  const prefix = namespace()
  const errorCooldownMs = 1000
  const options = { apiKey: API_KEY, baseUrl: upstream.url, errorCooldownMs, jitterRatio: 0, redis: { url: redis.url, keyPrefix: prefix } }
  const instances = [0, 1, 2, 3].map(() => new WeatherService(options))
  // The shared record: until when (server ms), failures in a row, the error.
  const record = async () => {
    const text = await redis.command('HGETALL', `{${prefix}}:failures:openweather`)
    const value = text.split('\r\n').find((l) => /^\d+ \d+ /.test(l))
    return value && { until: Number(value.split(' ')[0]), failures: Number(value.split(' ')[1]) }
  }
  const serverMs = async () => {
    const [seconds, micros] = (await redis.command('TIME')).split('\r\n').filter((l) => /^\d+$/.test(l))
    return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000)
  }
  try {
    const first = await instances[0].getForecast(null, 'a', 45.76, 4.84).catch((e) => e)
    assert.equal(first.code, 'ERR_UPSTREAM_STATUS')
    await untilAsync(async () => (await record())?.failures === 1, 'the failure shared')
    // B, C and D, a kilometre or two away: the same error, no call.
    for (const [i, service] of instances.slice(1).entries()) {
      const error = await service.getForecast(null, `u${i}`, 45.76 + 0.01 * i, 4.85).catch((e) => e)
      assert.deepEqual([error.code, error.status], ['ERR_UPSTREAM_STATUS', 503], `instance ${i + 1}`)
    }
    assert.equal(upstream.count, 1, 'one call in the first window')
    // The window ends (on Redis's clock, and on each instance's): the next ask is one call, for
    // all four; it fails again, and the window doubles for everyone.
    const { until: ended } = await record()
    await untilAsync(async () => (await serverMs()) > ended + 50, 'the window over', 5000)
    const again = await Promise.all(instances.map((s, i) => s.getForecast(null, `v${i}`, 45.765, 4.845).catch((e) => e)))
    assert.ok(again.every((e) => e.code === 'ERR_UPSTREAM_STATUS'))
    assert.equal(upstream.count, 2, 'one call in the second window')
    await untilAsync(async () => (await record())?.failures === 2, 'the second failure shared')
    const { until } = await record()
    assert.ok(until - (await serverMs()) > errorCooldownMs, 'doubled')
  } finally {
    for (const service of instances) service.close()
    await upstream.close()
  }
})

test('calls counted alone while Redis was away are added to the shared counters when it is back', { skip }, async () => {
  const own = await startRedis()
  const upstream = await startUpstream(answer.weather)
  const prefix = namespace()
  const service = new WeatherService({ apiKey: API_KEY, baseUrl: upstream.url, budget: { perDay: 100 }, redis: { url: own.url, keyPrefix: prefix, timeoutMs: 100 } })
  const day = async () => Number(/:(\d+)\r\n$/.exec(await own.command('GET', `{${prefix}}:budget:openweather:day`))?.[1] ?? 0)
  try {
    await service.getForecast(null, 'u', 10, 10)
    assert.equal(await day(), 1)
    await own.kill()
    // Three calls while Redis is away: "local" (the default) counts them in this process.
    for (const [i, lon] of [20, 30, 40].entries()) await service.getForecast(null, `u${i}`, 10, lon)
    assert.equal(upstream.count, 4)
    assert.equal(service.stats().tier.unsharedCalls, 3)
    await own.start()
    // A request after the circuit's window probes Redis and closes the circuit; the calls
    // counted alone (the three, and any probe made alone) are added then.
    // (A request a fifth of the circuit's first window apart: each is an upstream call.)
    for (let spot = 1; !service.stats().tierUp; spot++) {
      assert.ok(spot < 50, 'the tier never came back')
      await service.getForecast(null, 'w', -10, 10 + spot)
      if (!service.stats().tierUp) await sleep(200)
    }
    await untilAsync(async () => service.stats().tier.reconciledCalls === service.stats().tier.unsharedCalls, 'the calls added')
    assert.ok(service.stats().tier.unsharedCalls >= 3)
    // Every call since the restart is in Redis's day counter: counted by Redis, or counted
    // alone and added (the first call's count went with the restart: no persistence here).
    assert.equal(await day(), upstream.count - 1)
  } finally {
    service.close()
    await upstream.close()
    await own.stop()
  }
})

test('the numbers: stats().tier and /metrics; an eviction policy that can evict counters is one warning', { skip }, async () => {
  const own = await startRedis({ args: ['--maxmemory', '64mb', '--maxmemory-policy', 'allkeys-lru'] })
  const upstream = await startUpstream(answer.weather)
  const log = recordingLogger()
  const service = new WeatherService({ apiKey: API_KEY, baseUrl: upstream.url, logger: log.logger, redis: { url: own.url, keyPrefix: namespace() } })
  try {
    for (const [i, lon] of [10, 20, 30].entries()) await service.getForecast(null, `u${i}`, 10, lon)
    // Write-throughs land after the answers: the two reads below are compared once the tier is quiet.
    for (let before = -1; service.stats().tier.roundTrips !== before; await new Promise((resolve) => setTimeout(resolve, 100))) {
      before = service.stats().tier.roundTrips
    }
    const { tier } = service.stats()
    assert.ok(tier.roundTrips >= 6, `${tier.roundTrips} round trips (a lookup and an admission per fetch)`)
    assert.equal(tier.roundTripHistogram.at(-1).leMs, Infinity)
    assert.equal(tier.roundTripHistogram.at(-1).count, tier.roundTrips)
    assert.deepEqual(tier.circuitOpenings, { timeout: 0, connection: 0, failover: 0, refused: 0, full: 0, error: 0 })
    // A fetch's write-through to Redis lands in the background, after its answer: it may add a
    // round trip between the two reads, never lose one.
    const metrics = service.metricsText()
    const later = service.stats().tier.roundTrips
    const counted = Number(/^weather_cache_tier_latency_seconds_bucket\{le="\+Inf"\} (\d+)$/m.exec(metrics)?.[1])
    assert.ok(counted >= tier.roundTrips && counted <= later, `${counted} in /metrics, ${tier.roundTrips} before, ${later} after`)
    assert.match(metrics, /^weather_cache_tier_circuit_openings_total\{cause="timeout"\} 0$/m)
    assert.match(metrics, /^weather_cache_tier_lease_waits_total\{outcome="answered"\} 0$/m)
    // Checked when the connection was made, before anything used it; the event crosses to the
    // JS thread on its own.
    await until(() => log.find('weather.tier.warning').length > 0, 'the warning')
    const warnings = log.find('weather.tier.warning')
    assert.equal(warnings.length, 1)
    assert.equal(warnings[0].level, 'warn')
    assert.match(warnings[0].obj.message, /allkeys-lru.*volatile-lru/)
    assert.equal(warnings[0].obj.tier, `127.0.0.1:${own.port}/0`)
  } finally {
    service.close()
    await upstream.close()
    await own.stop()
  }
})

// Second review of issue 20: each test below failed on the branch before its fix.

test('a Redis that accepts connections and never answers, from the start: no request waits on it beyond a deadline; one degraded event; back by itself; its calls counted', { skip }, async () => {
  const own = await startRedis()
  const upstream = await startUpstream(answer.weather)
  const hole = await startBlackHole()
  const relay = await startRelay(own.port)
  relay.switchTo(hole.port) // every connection the service makes goes nowhere
  const log = recordingLogger()
  const prefix = namespace()
  const service = new WeatherService({ apiKey: API_KEY, baseUrl: upstream.url, budget: { perDay: 100 }, redis: { url: relay.url, keyPrefix: prefix, timeoutMs: 100 }, logger: log.logger })
  const day = async () => Number(/:(\d+)\r\n$/.exec(await own.command('GET', `{${prefix}}:budget:openweather:day`))?.[1] ?? 0)
  try {
    // Longer than the connection's own deadline (2 s): a request (each in a new area: a fetch)
    // spends at most a deadline per Redis operation, however long connecting takes.
    const started = Date.now()
    const latencies = []
    for (let i = 0; Date.now() - started < 3500; i++) {
      const t = Date.now()
      assert.ok(await service.getWeather(null, `u${i}`, 10, -170 + 3 * i))
      latencies.push(Date.now() - t)
      await sleep(100)
    }
    assert.ok(Math.max(...latencies) < 800, `request latencies (ms): ${latencies.join(' ')}`)
    // The outage is told once, with its cause, and stats() say so.
    await until(() => service.stats().tierUp === false, 'the tier down')
    const degraded = log.find('weather.tier.degraded')
    assert.equal(degraded.length, 1)
    assert.equal(degraded[0].obj.cause, 'timeout')
    assert.match(degraded[0].obj.reason, /no connection within 2000 ms/)
    assert.equal(service.stats().tier.circuitOpenings.timeout, 1)
    // Redis reachable again: back by itself, and the calls counted alone are in its counter.
    relay.switchTo(own.port)
    for (let i = 0; !service.stats().tierUp; i++) {
      assert.ok(Date.now() - started < 25_000, 'the tier never came back')
      await service.getWeather(null, `v${i}`, -10, -170 + 3 * i)
      await sleep(200)
    }
    await until(() => log.find('weather.tier.restored').length === 1, 'the restored event')
    assert.equal(log.find('weather.tier.degraded').length, 1)
    await untilAsync(async () => (await day()) === upstream.count, `every call in the shared day counter (${upstream.count})`)
  } finally {
    service.close()
    await relay.close()
    await hole.close()
    await upstream.close()
    await own.stop()
  }
})

test('a Cluster master down while the others answer: one degraded event and one restored for the outage, however it flaps', { skip: skipCluster }, async () => {
  const cluster = await startRedisCluster()
  // The masters left keep serving their slots (a Redis partly there: probes get through now
  // and then, and the operation after one fails).
  for (const node of cluster.nodes) await node.command('CONFIG', 'SET', 'cluster-require-full-coverage', 'no')
  const upstream = await startUpstream(answer.weather)
  const log = recordingLogger()
  const service = new WeatherService({ apiKey: API_KEY, baseUrl: upstream.url, redis: { url: cluster.url, keyPrefix: namespace(), timeoutMs: 100 }, logger: log.logger })
  let stop = false
  let k = 0
  // Requests over Europe, every tile in turn (a new area each time: each asks Redis).
  const traffic = (async () => {
    while (!stop) {
      const i = k++
      await service.getWeather(null, `u${i}`, 36 + 2.5 * (i % 12) + 0.1 * (Math.floor(i / 192) % 20), -10 + 2.5 * (Math.floor(i / 12) % 16) + 0.1 * Math.floor(i / 3840))
      await sleep(20)
    }
  })()
  try {
    await sleep(1000)
    assert.equal(service.stats().tierUp, true)
    await cluster.nodes[2].kill()
    await sleep(10_000)
    assert.equal(log.find('weather.tier.degraded').length, 1, `events: ${log.names().join(', ')}`)
    assert.equal(log.find('weather.tier.restored').length, 0, `events: ${log.names().join(', ')}`)
    await cluster.nodes[2].start()
    await until(() => log.find('weather.tier.restored').length === 1, 'the restored event', 45_000)
    await sleep(3000)
    assert.deepEqual([log.find('weather.tier.degraded').length, log.find('weather.tier.restored').length], [1, 1], `events: ${log.names().join(', ')}`)
    assert.equal(service.stats().tierUp, true)
  } finally {
    stop = true
    await traffic
    service.close()
    await upstream.close()
    await cluster.stop()
  }
})

test("a lookup whose answer came too late still took a lease: another instance waits a lease's seconds for it, not an upstream timeout", { skip }, async () => {
  const upstream = await startUpstream(answer.delayed(50))
  const relay = await startRelay(redis.port)
  const prefix = namespace()
  // A's link to Redis turns slow: Redis takes its lease, the answer arrives after A's deadline.
  // A fetches alone, its circuit open: neither its landing nor a release reaches Redis.
  const a = new WeatherService({ apiKey: API_KEY, baseUrl: upstream.url, redis: { url: relay.url, keyPrefix: prefix, timeoutMs: 100 } })
  const b = new WeatherService({ apiKey: API_KEY, baseUrl: upstream.url, redis: { url: redis.url, keyPrefix: prefix, timeoutMs: 100 } })
  try {
    await Promise.all([a.getWeather(null, 'w', -1, -1), b.getWeather(null, 'w', -2, -2)])
    relay.setLatency(150)
    const first = a.getForecast(null, 'a', 45, 5)
    await sleep(30)
    const started = Date.now()
    const second = await b.getForecast(null, 'b', 45.001, 5.001)
    const waited = Date.now() - started
    assert.equal((await first).meta.source, 'network')
    assert.equal(a.stats().tierUp, false)
    assert.equal(second.meta.source, 'network', 'B took over once the lease expired')
    assert.equal(b.stats().tier.leaseWaits.tookOver, 1)
    assert.ok(waited < 3500, `B waited ${waited} ms on a lease nobody held (requestTimeoutMs is 10 s)`)
  } finally {
    a.close()
    b.close()
    await relay.close()
    await upstream.close()
  }
})
