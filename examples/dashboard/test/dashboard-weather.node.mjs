// @ts-check
// The Dashboard's weather handlers under node:test, against weather-cache/testing's fake
// OpenWeather, on the service's manual clock. Run: node --test test/dashboard-weather.node.mjs
import assert from 'node:assert/strict'
import { after, before, beforeEach, test } from 'node:test'

import { WeatherService } from 'weather-cache'
import { startFakeOpenWeather } from 'weather-cache/testing'

import { DashboardWeather } from '../src/dashboard-weather.js'

const NEW_YORK = { lat: 40.7128, lng: -74.006 }
const LONDON = { lat: 51.5072, lng: -0.1276 }

/** @type {import('weather-cache/testing').FakeOpenWeather} */
let fake
/** @type {WeatherService} */
let service
/** @type {DashboardWeather} */
let dashboard

before(async () => {
  fake = await startFakeOpenWeather()
})
after(async () => {
  service?.close()
  await fake.close()
})

beforeEach(() => {
  service?.close()
  fake.reset()
  fake.calls.length = 0
  fake.setPlace(NEW_YORK.lat, NEW_YORK.lng, { tempC: 20.6, condition: 'Clouds' })
  // A service of the test's own: the app uses the shared `weatherService`, configured from the
  // environment; here the clock moves only with advanceTime().
  service = new WeatherService({ apiKey: fake.apiKey, baseUrl: fake.url, clock: 'manual' })
  dashboard = new DashboardWeather(service)
})

/**
 * A MentraOS session as the handlers use it; `topRight` records what the glasses show.
 * @param {string} userId
 * @param {Record<string, unknown>} settings
 */
function glasses(userId, settings = {}) {
  /** @type {string[]} */
  const topRight = []
  const noop = () => {}
  const session = {
    userId,
    logger: { debug: noop, info: noop, warn: noop, error: noop },
    settings: { getMentraosSetting: (/** @type {string} */ key) => settings[key] },
    dashboard: { system: { setTopRight: (/** @type {string} */ text) => void topRight.push(text) } },
  }
  return { session, settings, topRight }
}

/** Lets background refreshes (stale-while-revalidate) land. */
async function settled() {
  while (service.stats().inflight > 0) await new Promise((resolve) => setTimeout(resolve, 5))
}

test('an unset metricSystemEnabled shows °F; a unit toggle and a walk cost no upstream call', async () => {
  const { session, settings, topRight } = glasses('alice')
  dashboard.startSession('s1', 'alice')
  await dashboard.handleLocationUpdate(session, 's1', NEW_YORK)
  assert.equal(topRight.at(-1), 'Clouds, 69°F') // °F from the unrounded 20.6 °C
  assert.equal(fake.count, 1)

  settings.metricSystemEnabled = true
  await dashboard.handleMetricSystemChange(session, 's1')
  assert.equal(topRight.at(-1), 'Clouds, 21°C')

  for (let i = 1; i <= 5; i++) await dashboard.handleLocationUpdate(session, 's1', { lat: NEW_YORK.lat + i * 0.002, lng: NEW_YORK.lng })
  const bob = glasses('bob')
  dashboard.startSession('s2', 'bob')
  await dashboard.handleLocationUpdate(bob.session, 's2', NEW_YORK)
  assert.equal(bob.topRight.at(-1), 'Clouds, 69°F')
  assert.equal(fake.count, 1, 'one call for everyone nearby')
})

test('after ten minutes (manual clock) the reading is refreshed', async () => {
  const { session, topRight } = glasses('alice')
  dashboard.startSession('s1', 'alice')
  await dashboard.handleLocationUpdate(session, 's1', NEW_YORK)
  fake.setPlace(NEW_YORK.lat, NEW_YORK.lng, { tempC: 25.2, condition: 'Rain' })

  service.advanceTime(10 * 60_000 + 1)
  await dashboard.handleLocationUpdate(session, 's1', NEW_YORK)
  assert.equal(topRight.at(-1), 'Clouds, 69°F', 'the stale reading, while a refresh runs')
  await settled()
  await dashboard.handleLocationUpdate(session, 's1', NEW_YORK)
  assert.equal(topRight.at(-1), 'Rain, 77°F')
  assert.equal(fake.count, 2)
})

test('a 429 keeps the last reading up and no call is made until Retry-After has passed', async () => {
  const { session, topRight } = glasses('alice')
  dashboard.startSession('s1', 'alice')
  await dashboard.handleLocationUpdate(session, 's1', NEW_YORK)

  fake.setDefault({ status: 429, retryAfter: 120 })
  await dashboard.handleLocationUpdate(session, 's1', LONDON)
  await dashboard.handleLocationUpdate(session, 's1', LONDON)
  assert.equal(topRight.at(-1), 'Clouds, 69°F')
  assert.deepEqual(fake.calls.map((c) => c.status), [200, 429], 'the second London update waited')

  fake.setDefault({ tempC: 11.3, condition: 'Drizzle' })
  service.advanceTime(119_999)
  await dashboard.handleLocationUpdate(session, 's1', LONDON)
  assert.equal(topRight.at(-1), 'Clouds, 69°F', 'still cooling down 1 ms before the 120 s')
  service.advanceTime(1)
  await dashboard.handleLocationUpdate(session, 's1', LONDON)
  assert.equal(topRight.at(-1), 'Drizzle, 52°F')
  assert.equal(fake.count, 3)
})
