// getWeather: the seed scenarios, lookup order, TTL, LRU, call forms and units.
import assert from 'node:assert/strict'
import { test } from 'node:test'

import { withService } from './helpers.mjs'
import { answer } from './upstream.mjs'

test('seed: (10.01, 10.01) then (10.04, 10.04) make one upstream call', () =>
  withService({ gridDeg: 0.1, proximityKm: 10 }, async ({ service, upstream }) => {
    const first = await service.getWeather(null, 'drone-1', 10.01, 10.01)
    const second = await service.getWeather(null, 'drone-2', 10.04, 10.04)
    assert.equal(upstream.count, 1)
    assert.deepEqual(second, first)
  }))

test('seed: 100 concurrent requests for one spot make one call; each gets its own Promise, all the same summary', () =>
  withService({}, async ({ service, upstream }) => {
    const promises = Array.from({ length: 100 }, (_, i) => service.getWeather(null, `drone-${i}`, 36.1 + i * 1e-5, -86.7))
    assert.equal(new Set(promises).size, 100, 'every caller gets its own Promise')
    const results = await Promise.all(promises)
    assert.equal(upstream.count, 1)
    assert.equal(new Set(results).size, 1, 'settled with one shared summary')
    assert.equal(typeof results[0].tempC, 'number')
  }))

test('summaries are frozen and shared per cache entry (copy one to change it)', () =>
  withService({}, async ({ service }) => {
    const first = await service.getWeather(null, 'u', 1, 1)
    assert.ok(Object.isFrozen(first))
    assert.throws(() => {
      'use strict'
      first.tempC = 99
    }, TypeError)
    assert.equal(await service.getWeather(null, 'v', 1.001, 1), first, 'a hit hands out the same object')
    assert.equal((await service.getForecast(null, 'w', 1, 1)).summary, first, 'getForecast shares it too')
    const copy = { ...first, tempC: 99 }
    assert.equal(copy.tempC, 99)
  }))

test('seed: two areas far apart requested concurrently make two calls', () =>
  withService({}, async ({ service, upstream }) => {
    await Promise.all([service.getWeather(null, 'a', 10, 10), service.getWeather(null, 'b', -33.9, 151.2)])
    assert.equal(upstream.count, 2)
  }))

test('seed: an upstream 500 while 50 wait makes one call and all 50 get null', () =>
  withService({}, async ({ service, upstream }) => {
    upstream.behave(answer.delayed(30, answer.status(500)))
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => service.getWeather(null, `d${i}`, 5, 5)))
    assert.equal(upstream.count, 1)
    assert.deepEqual(results, Array(50).fill(null))
  }))

test('per-user hit within 5 km, shared hit for another user, miss beyond 5 km', () =>
  withService({}, async ({ service, upstream }) => {
    const paris = await service.getWeather(null, 'alice', 48.8566, 2.3522)
    assert.equal(upstream.count, 1)
    assert.deepEqual(await service.getWeather(null, 'alice', 48.87, 2.36), paris) // ~1.7 km
    assert.deepEqual(await service.getWeather(null, 'bob', 48.86, 2.34), paris) // shared
    assert.equal(upstream.count, 1)
    await service.getWeather(null, 'alice', 48.8566, 2.43) // ~5.7 km east
    assert.equal(upstream.count, 2)
  }))

test('refetch once the 10 minute TTL passed (manual clock)', () =>
  withService({ staleTtlMs: 0 }, async ({ service, upstream }) => {
    await service.getWeather(null, 'u', 1, 1)
    service.advanceTime(599_999)
    await service.getWeather(null, 'u', 1, 1)
    assert.equal(upstream.count, 1)
    service.advanceTime(1)
    await service.getWeather(null, 'u', 1, 1)
    assert.equal(upstream.count, 2)
  }))

test('the shared LRU evicts the least recently used area at capacity', () =>
  withService({ sharedCapacity: 2 }, async ({ service, upstream }) => {
    await service.getWeather(null, 'a', 10, 10)
    await service.getWeather(null, 'b', 20, 20)
    await service.getWeather(null, 'x', 10, 10) // area A becomes most recent (shared hit)
    await service.getWeather(null, 'c', 30, 30) // evicts area B
    assert.equal(upstream.count, 3)
    await service.getWeather(null, 'y', 10, 10)
    assert.equal(upstream.count, 3, 'A survived')
    await service.getWeather(null, 'z', 20, 20)
    assert.equal(upstream.count, 4, 'B was evicted')
  }))

test('clearUser forgets the user, not the shared cache', () =>
  withService({ sharedCapacity: 1 }, async ({ service, upstream }) => {
    await service.getWeather(null, 'u', 10, 10)
    await service.getWeather(null, 'v', 20, 20) // the shared store now only holds area 2
    await service.getWeather(null, 'u', 10, 10)
    assert.equal(upstream.count, 2, 'u still had area 1 in its own cache')
    service.clearUser('u')
    await service.getWeather(null, 'u', 10, 10)
    assert.equal(upstream.count, 3)
    service.clearUser('nobody') // unknown users are fine
  }))

test('3-argument form takes the user from session.userId', () =>
  withService({ sharedCapacity: 1 }, async ({ service, upstream }) => {
    const session = { userId: 'dash-user' }
    const viaSession = await service.getWeather(session, 40.7, -74)
    await service.getWeather(null, 'other', -40, 100) // pushes the area out of the shared store
    assert.deepEqual(await service.getWeather(null, 'dash-user', 40.7, -74), viaSession, 'same user cache')
    assert.equal(upstream.count, 2)
  }))

test('Celsius is stored unrounded: 20.6 °C shows 21 °C and 69 °F', () =>
  withService({}, async ({ service }) => {
    assert.deepEqual(await service.getWeather(null, 'u', 1, 1), { condition: 'Clouds', tempC: 21, tempF: 69 })
  }, answer.fixed(20.6)))

test('a missing condition reads "Unknown"; °F comes from -3.2 °C, not from -3', () =>
  withService({}, async ({ service }) => {
    assert.deepEqual(await service.getWeather(null, 'u', 1, 1), { condition: 'Unknown', tempC: -3, tempF: 26 })
  }, (req, res) => {
    const body = JSON.stringify({ current: { temp: -3.2 } })
    res.writeHead(200, { 'Content-Type': 'application/json' }).end(body)
  }))

for (const [name, behaviour] of [
  ['invalid JSON', answer.garbage],
  ['JSON without current.temp', answer.noTemp],
  ['HTTP 500', answer.status(500)],
  ['a body over 1 MiB', answer.huge(2 * 1024 * 1024)],
]) {
  test(`${name} resolves null (never a fake reading) and is not cached`, () =>
    withService({ errorCooldownMs: 0 }, async ({ service, upstream }) => {
      assert.equal(await service.getWeather(null, 'u', 1, 1), null)
      upstream.behave(answer.fixed(10))
      assert.deepEqual(await service.getWeather(null, 'u', 1, 1), { condition: 'Clouds', tempC: 10, tempF: 50 })
      assert.equal(upstream.count, 2)
    }, behaviour))
}

test('HTTP 401 resolves null and is not cached; the rejected key is not tried again for 10 minutes, whatever errorCooldownMs', () =>
  withService({ errorCooldownMs: 0 }, async ({ service, upstream }) => {
    assert.equal(await service.getWeather(null, 'u', 1, 1), null)
    upstream.behave(answer.fixed(10))
    assert.equal(await service.getWeather(null, 'u', 1, 1), null)
    assert.equal(upstream.count, 1, 'no call during the cooldown')
    service.advanceTime(600_000)
    assert.deepEqual(await service.getWeather(null, 'u', 1, 1), { condition: 'Clouds', tempC: 10, tempF: 50 })
    assert.equal(upstream.count, 2)
  }, answer.status(401)))

test('coordinates go upstream rounded to coordinateDecimals, with the fixed query', () =>
  withService({ coordinateDecimals: 3, proximityKm: 1 }, async ({ service, upstream }) => {
    await service.getWeather(null, 'u', 36.123456, -86.678912)
    const [q] = upstream.requests
    // Nothing excluded: every part of the answer is a product some caller may ask for (issue 23).
    assert.deepEqual([q.rawLat, q.rawLon, q.exclude, q.units], ['36.123', '-86.679', null, 'metric'])
  }))

test('no API key resolves null without an upstream call', async () => {
  const { WeatherService } = await import('../main.js')
  const { startUpstream } = await import('./upstream.mjs')
  const upstream = await startUpstream()
  const saved = process.env.OPEN_WEATHER_API_KEY
  delete process.env.OPEN_WEATHER_API_KEY
  try {
    const service = new WeatherService({ baseUrl: upstream.url })
    assert.equal(await service.getWeather(null, 'u', 1, 1), null)
    await assert.rejects(service.getForecast(null, 'u', 1, 1), { code: 'ERR_NO_API_KEY' })
    assert.equal(upstream.count, 0)
  } finally {
    if (saved !== undefined) process.env.OPEN_WEATHER_API_KEY = saved
    await upstream.close()
  }
})

test('apiKey defaults to OPEN_WEATHER_API_KEY, read at construction', async () => {
  const { WeatherService } = await import('../main.js')
  const { startUpstream, API_KEY } = await import('./upstream.mjs')
  const upstream = await startUpstream()
  process.env.OPEN_WEATHER_API_KEY = API_KEY
  try {
    const service = new WeatherService({ baseUrl: upstream.url })
    delete process.env.OPEN_WEATHER_API_KEY
    assert.notEqual(await service.getWeather(null, 'u', 1, 1), null)
    assert.equal(upstream.requests[0].appid, API_KEY)
  } finally {
    delete process.env.OPEN_WEATHER_API_KEY
    await upstream.close()
  }
})
