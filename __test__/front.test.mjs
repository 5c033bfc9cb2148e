// The JS front (lib/front.js) answers repeat getWeather hits without crossing N-API. Here:
// - a differential property test: random sequences of operations against two services, the
//   front on and off, must give identical results, stats() and upstream calls;
// - its distance bound never accepts a point the engine would refuse;
// - what a user sees at the edges: clearUser, close, the manual clock, debug events, the
//   3-argument form and odd sessions.
// FRONT_SEEDS=2000 npm test runs more sequences (default 60).
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import test from 'node:test'

import { distanceKm } from '../main.js'
import { recordingLogger, until } from './helpers.mjs'
import { API_KEY, answer, startUpstream } from './upstream.mjs'

const require = createRequire(import.meta.url)
const { WeatherService, withoutFront, inflightOf, frontHitsOf } = require('../lib/weather-service.js')
const { Front } = require('../lib/front.js')

/** xorshift32: the same seed, the same sequence. */
function random(seed) {
  let x = seed >>> 0 || 0x9e3779b9
  const next = () => {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    return x / 2 ** 32
  }
  return {
    next,
    int: (n) => Math.floor(next() * n),
    pick: (items) => items[Math.floor(next() * items.length)],
  }
}

// Places users move between: A and B 3.5 km apart, C 9 km from A, D across the antimeridian,
// E near the pole; moves add up to ~3 km of jitter, so points land on both sides of 5 km.
const PLACES = [
  [48.85, 2.35],
  [48.88, 2.35],
  [48.93, 2.35],
  [-16.5, 179.99],
  [89.9, 10],
]
const CHECK_EVERY = Number(process.env.FRONT_CHECK_EVERY ?? 5)
const USERS = ['ada', 'bo', 'cy', 'dee', 'eve']

function point(rng, near) {
  const [lat, lon] = near ?? rng.pick(PLACES)
  const jitter = rng.pick([0, 0, 0.001, 0.01, 0.03, 0.0449])
  const la = Math.max(-90, Math.min(90, lat + (rng.next() - 0.5) * 2 * jitter))
  let lo = lon + (rng.next() - 0.5) * 2 * jitter
  if (lo > 180) lo -= 360
  return [la, lo]
}

const BEHAVIOURS = {
  weather: answer.weather,
  unavailable: answer.status(503),
  limited: answer.rateLimited(30),
  limitedBare: answer.rateLimited(),
  garbage: answer.garbage,
}

/** One random operation: a description and a function running it against one service. */
function operation(rng, last, users) {
  const user = rng.pick(users)
  // Users mostly ask again near where they asked last (the front's case), sometimes elsewhere.
  const [lat, lon] = point(rng, last.has(user) && rng.next() < 0.75 ? last.get(user) : undefined)
  last.set(user, [lat, lon])
  const roll = rng.next()
  if (roll < 0.3) return { op: `getWeather(${user}, ${lat}, ${lon})`, run: (s) => s.getWeather(null, user, lat, lon) }
  if (roll < 0.4) {
    // A user polling: several calls in a row, each awaited, wandering a little.
    const polls = Array.from({ length: 2 + rng.int(4) }, () => point(rng, [lat, lon]))
    return {
      op: `poll(${user}, ${JSON.stringify(polls)})`,
      async run(s) {
        const answers = []
        for (const [la, lo] of polls) answers.push(await s.getWeather(null, user, la, lo))
        return answers
      },
    }
  }
  if (roll < 0.6) {
    const session = { userId: user }
    return { op: `getWeather({userId: ${user}}, ${lat}, ${lon})`, run: (s) => s.getWeather(session, lat, lon) }
  }
  if (roll < 0.64) {
    const force = rng.next() < 0.3
    return { op: `getForecast(${user}, ${lat}, ${lon}, force=${force})`, run: (s) => s.getForecast(null, user, lat, lon, { forceRefresh: force }) }
  }
  if (roll < 0.67) return { op: `warmup(${user}, ${lat}, ${lon})`, run: (s) => s.warmup(user, lat, lon) }
  if (roll < 0.76) {
    const ms = rng.pick([1_000, 20_000, 45_000, 61_000, 125_000, 400_000])
    // The clock it returns starts where each service was made: not part of the comparison.
    return { op: `advanceTime(${ms})`, run: (s) => void s.advanceTime(ms) }
  }
  if (roll < 0.8) return { op: `clearUser(${user})`, run: (s) => s.clearUser(user) }
  if (roll < 0.86) {
    const behaviour = rng.pick(Object.keys(BEHAVIOURS))
    return { op: `upstream: ${behaviour}`, upstream: BEHAVIOURS[behaviour] }
  }
  if (roll < 0.92) {
    // Several users at once, not awaited one by one.
    const calls = Array.from({ length: 2 + rng.int(5) }, () => [rng.pick(users), ...point(rng)])
    return {
      op: `burst ${JSON.stringify(calls)}`,
      run: (s) => Promise.all(calls.map(([u, la, lo]) => s.getWeather(null, u, la, lo))),
    }
  }
  if (roll < 0.97) {
    const bad = rng.pick([
      [null, user, 'north', lon],
      [null, user, String(lat), lon],
      [null, user, lat, new Number(lon)],
      [{ userId: user }, String(lat), lon],
      [null, user, 95, lon],
      [null, '', lat, lon],
      [42, user, lat, lon],
      [{ userId: 7 }, lat, lon],
      [{}, lat, lon],
      [null, user, lat],
    ])
    return { op: `getWeather(${JSON.stringify(bad)})`, run: (s) => s.getWeather(...bad) }
  }
  return { op: 'close()', run: (s) => s.close() }
}

/** What a caller sees, comparable across services (fetchedAt depends on the clock's origin). */
async function outcome(promise) {
  try {
    const value = await promise
    return { value: JSON.parse(JSON.stringify(value ?? null, (key, v) => (key === 'fetchedAt' ? undefined : v))) }
  } catch (error) {
    return { error: error.code ?? String(error) }
  }
}

/**
 * An upstream that holds every request until the test releases it. Concurrent flights must
 * land in the same order on both services (the order decides LRU evictions), so `drain`
 * releases them one at a time, in the order of their coordinates, each once the service's
 * every flight is waiting on the upstream, and the next once it landed.
 */
async function heldUpstream() {
  const held = []
  let behaviour = answer.weather
  const upstream = await startUpstream((req, res, q) => held.push({ q, answer: () => behaviour(req, res, q) }))
  return {
    upstream,
    behave: (next) => (behaviour = next),
    /** Lands `service`'s flights one by one until `done()` and nothing is in the air. */
    async drain(service, done) {
      for (;;) {
        await until(() => {
          const inflight = inflightOf(service)
          return inflight === 0 ? done() : held.length >= inflight
        }, 'every flight at the upstream')
        const inflight = inflightOf(service)
        if (inflight === 0) {
          if (done()) break
          continue
        }
        if (held.length < inflight) continue
        let first = 0
        for (let i = 1; i < held.length; i++) {
          const [a, b] = [held[i].q, held[first].q]
          if (a.lat < b.lat || (a.lat === b.lat && a.lon < b.lon)) first = i
        }
        held.splice(first, 1)[0].answer()
        // Once it landed, let its waiters resume (their answers cross from Rust as callbacks)
        // before the next lands: what they do next must not race the next landing, or the
        // users LRU's order (see README, where the front can differ) would depend on timing.
        await until(() => inflightOf(service) < inflight || held.length >= inflightOf(service), 'the flight to land')
        for (let i = 0; i < 3; i++) await new Promise((resolve) => setTimeout(() => setImmediate(resolve), 1))
      }
      // After close(): what cancelled flights had asked.
      while (held.length > 0) held.shift().answer()
    },
  }
}

/** Runs one operation on one service, lands its flights in a fixed order, and says what it gave. */
async function perform(run, service, upstream) {
  let promise
  try {
    promise = Promise.resolve(run(service))
  } catch (error) {
    promise = Promise.reject(error)
  }
  let settled = false
  promise.then(
    () => (settled = true),
    () => (settled = true),
  )
  await upstream.drain(service, () => settled)
  return outcome(promise)
}

async function sequence(seed, length) {
  const rng = random(seed)
  const options = {
    apiKey: API_KEY,
    clock: 'manual',
    jitterRatio: 0,
    maxUsers: rng.pick([2, 3, 100, 100]),
    sharedCapacity: rng.pick([2, 4, 1000]),
    freshTtlMs: rng.pick([60_000, 600_000]),
    staleTtlMs: rng.pick([0, 120_000, 7_200_000]),
    minRefreshIntervalMs: rng.pick([0, 30_000]),
  }
  const upstreams = [await heldUpstream(), await heldUpstream()]
  const [on, off] = upstreams.map((u) => new WeatherService({ ...options, baseUrl: u.upstream.url }))
  withoutFront(off)
  if (process.env.FRONT_CONTROL) withoutFront(on)
  // Each manual clock starts at its own service's creation: times are compared from there.
  const origins = []
  for (const [i, service] of [on, off].entries()) {
    const { value } = await perform((s) => s.getForecast(null, 'probe', 0, 0), service, upstreams[i])
    origins.push(value.meta.ageMs + (await service.getForecast(null, 'probe', 0, 0)).meta.fetchedAt)
  }
  const comparable = (stats, origin) => {
    const since = (t) => (t === 0 ? 0 : t - origin)
    return { ...stats, backoffUntil: since(stats.backoffUntil), providers: stats.providers.map((p) => ({ ...p, backoffUntil: since(p.backoffUntil) })) }
  }
  const log = [`seed ${seed}: ${JSON.stringify(options)}`]
  try {
    const last = new Map()
    const users = USERS.slice(0, 2 + rng.int(4))
    for (let i = 0; i < length; i++) {
      const { op, run, upstream } = operation(rng, last, users)
      log.push(op)
      if (upstream) {
        for (const u of upstreams) u.behave(upstream)
        continue
      }
      const [a, b] = await Promise.all([perform(run, on, upstreams[0]), perform(run, off, upstreams[1])]).catch((error) => {
        error.message += `\n${log.join('\n')}`
        throw error
      })
      assert.deepEqual(a, b, `${log.join('\n')}\nfront on and off differ`)
      if (i % CHECK_EVERY === CHECK_EVERY - 1 || i === length - 1) {
        assert.deepEqual(comparable(on.stats(), origins[0]), comparable(off.stats(), origins[1]), `${log.join('\n')}\nstats() differ`)
        assert.equal(upstreams[0].upstream.count, upstreams[1].upstream.count, `${log.join('\n')}\nupstream calls differ`)
      }
    }
    return frontHitsOf(on)
  } finally {
    on.close()
    off.close()
    for (const u of upstreams) await u.upstream.close()
  }
}

test('differential: random operations give the same results and stats with the front on and off', async () => {
  const seeds = Number(process.env.FRONT_SEEDS ?? 60)
  let frontHits = 0
  // FRONT_SEED=n replays one sequence (the one a failure names).
  const only = Number(process.env.FRONT_SEED ?? 0)
  for (let seed = only || 1; seed <= (only || seeds); seed++) frontHits += await sequence(seed, 40)
  if (!process.env.FRONT_CONTROL && !only) assert.ok(frontHits > seeds, `the front answered only ${frontHits} calls`)
})

test('the distance bound never accepts a point the engine refuses, and misses almost nothing inside', async () => {
  const flushed = []
  const native = { frontFlush: (users, hits) => flushed.push(hits) }
  const versions = new ArrayBuffer(4)
  const view = new Float64Array(7)
  const front = new Front(native, { versions, view: view.buffer, proximityKm: 5, maxUsers: 10, manualClock: true })
  const rng = random(7)
  const answered = Promise.resolve('entry')
  let accepted = 0
  for (let i = 0; i < 200_000; i++) {
    const lat0 = (rng.next() - 0.5) * 179.8
    const lon0 = (rng.next() - 0.5) * 359.8
    const call = front.expect()
    view.set([1, lat0, lon0, 1e12, 0, 0, 0])
    front.learn(call, 'u', answered)
    // Points around the 5 km edge in every direction (0.045 degrees of latitude ~ 5 km).
    const scale = rng.pick([0.01, 0.04, 0.0449, 0.045, 0.05]) / Math.max(0.05, Math.cos((lat0 * Math.PI) / 180) ** rng.int(2))
    const lat = Math.max(-90, Math.min(90, lat0 + (rng.next() - 0.5) * 2 * scale))
    const lon = Math.max(-180, Math.min(180, lon0 + (rng.next() - 0.5) * 2 * scale))
    const engine = distanceKm(lat, lon, lat0, lon0)
    const hit = front.answer('u', lat, lon) === answered
    if (hit) {
      accepted++
      assert.ok(engine <= 5, `accepted ${lat},${lon} at ${engine} km from ${lat0},${lon0}`)
    } else {
      assert.ok(engine > 5 - 1e-6, `refused ${lat},${lon} at ${engine} km from ${lat0},${lon0}`)
    }
  }
  assert.ok(accepted > 50_000, `${accepted} accepted`)
  await new Promise((resolve) => setImmediate(resolve))
  assert.equal(flushed.reduce((a, b) => a + b, 0), accepted, 'every hit handed back')
})

async function withFront(options, fn) {
  const upstream = await startUpstream()
  const service = new WeatherService({ apiKey: API_KEY, baseUrl: upstream.url, clock: 'manual', jitterRatio: 0, ...options })
  try {
    await fn(service, upstream)
  } finally {
    service.close()
    await upstream.close()
  }
}

test('front hits count as user hits at once, and the identities hold', () =>
  withFront({}, async (service) => {
    await service.getWeather(null, 'ada', 48.85, 2.35) // miss
    await service.getWeather(null, 'ada', 48.85, 2.35) // the addon's hit: the front learns it
    const answers = await Promise.all(Array.from({ length: 100 }, (_, i) => service.getWeather(null, 'ada', 48.85 + i * 1e-4, 2.35)))
    assert.ok(answers.every((a) => a === answers[0]), 'the same frozen summary')
    const stats = service.stats()
    assert.equal(stats.requests, 102)
    assert.equal(stats.userHits, 101)
    assert.equal(stats.requests, stats.userHits + stats.sharedHits + stats.staleHits + stats.misses + stats.coalesced + stats.rejected)
    assert.match(service.metricsText(), /weather_cache_user_hits_total 101/)
  }))

test('clearUser and close take effect at once', () =>
  withFront({}, async (service, upstream) => {
    for (let i = 0; i < 3; i++) await service.getWeather(null, 'bo', 10, 10)
    service.clearUser('bo')
    assert.equal(service.stats().users, 0)
    const meta = (await service.getForecast(null, 'bo', 10, 10)).meta
    assert.equal(meta.source, 'cache', 'from the shared store: bo has nothing of its own')
    assert.equal(service.stats().sharedHits, 1)
    service.close()
    assert.equal(await service.getWeather(null, 'bo', 10, 10).catch((e) => e.code), 'ERR_SERVICE_CLOSED')
    assert.equal(upstream.count, 1)
  }))

test('a getWeather nested in another (a session logger getter) leaves the front remembering the right entry', () =>
  withFront({}, async (service) => {
    await service.getWeather(null, 'x', 10, 10) // a miss: x's next call is the addon's hit
    let nested = false
    const session = {
      get logger() {
        // Read by the addon on a miss, while its call runs.
        if (!nested) {
          nested = true
          service.getWeather(null, 'x', 10, 10)
        }
        return undefined
      },
    }
    const own = await service.getWeather(session, 'a', 40, 40)
    assert.ok(nested, 'the getter ran inside the call')
    // a's newest entry is its own (40, 40); at (10, 10) the engine finds x's, in the shared store.
    const there = await service.getForecast(null, 'a', 10, 10)
    assert.notEqual(own.tempC, there.summary.tempC)
    assert.equal(await service.getWeather(null, 'a', 10.001, 10), there.summary, 'x\'s entry, not a\'s old answer')
  }))

test('the manual clock: an entry the front remembers expires with advanceTime', () =>
  // No refresh-ahead: the entry must be left to expire.
  withFront({ staleTtlMs: 0, refreshAheadMs: 0 }, async (service, upstream) => {
    await service.getWeather(null, 'cy', 1, 1)
    await service.getWeather(null, 'cy', 1, 1)
    service.advanceTime(599_999)
    await service.getWeather(null, 'cy', 1, 1)
    assert.equal(upstream.count, 1)
    service.advanceTime(1)
    await service.getWeather(null, 'cy', 1, 1)
    assert.equal(upstream.count, 2, 'expired at exactly freshTtlMs')
    assert.equal(service.stats().misses, 2)
  }))

test('with debug events on, every hit reaches the logger (the front steps aside)', async () => {
  const { logger, find } = recordingLogger()
  await withFront({ logLevel: 'debug' }, async (service) => {
    for (let i = 0; i < 5; i++) await service.getWeather({ logger }, 'dee', 20, 20)
    assert.equal(find('weather.cache.hit.fresh').length, 4)
  })
})

test('the 3-argument form: session.userId is read once per call, odd sessions get the addon\'s errors', () =>
  withFront({}, async (service) => {
    let reads = 0
    const session = {
      get userId() {
        reads++
        return 'eve'
      },
    }
    for (let i = 0; i < 4; i++) await service.getWeather(session, 30, 30)
    assert.equal(reads, 4)
    assert.equal(service.stats().userHits, 3)
    const throwing = {
      get userId() {
        throw new Error('hostile')
      },
    }
    assert.equal(await service.getWeather(throwing, 30, 30).catch((e) => e.code), 'ERR_INVALID_ARG_TYPE')
    assert.equal(await service.getWeather({ userId: '' }, 30, 30).catch((e) => e.code), 'ERR_INVALID_ARG_VALUE')
    assert.equal(await service.getWeather(7, 'eve', 30, 30).catch((e) => e.code), 'ERR_INVALID_ARG_TYPE')
    assert.equal(await service.getWeather(null, 'eve', 30, 'x').catch((e) => e.code), 'ERR_INVALID_ARG_TYPE')
    assert.equal(await service.getWeather(null, 'eve', 30, 181).catch((e) => e.code), 'ERR_OUT_OF_RANGE')
    assert.equal(service.stats().requests, 4, 'bad calls are not requests')
  }))
