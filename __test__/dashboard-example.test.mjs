// The Dashboard example's own logic (examples/dashboard/src/weather.js), driven by a fake
// MentraOS session: unit toggles re-render from the cache and never call upstream.
import assert from 'node:assert/strict'
import { test } from 'node:test'

import { DashboardWeather, METRIC_SETTING, formatWeather } from '../examples/dashboard/src/weather.js'
import { recordingLogger, withService } from './helpers.mjs'
import { answer } from './upstream.mjs'

function fakeSession(userId) {
  const settings = new Map([[METRIC_SETTING, true]])
  const listeners = []
  return {
    userId,
    logger: recordingLogger().logger,
    settings: {
      getMentraosSetting: (key, fallback) => (settings.has(key) ? settings.get(key) : fallback),
      onMentraosSettingChange: (key, handler) => listeners.push({ key, handler }),
    },
    /** What MentraOS does when the user flips the setting. */
    toggle(key) {
      const old = settings.get(key)
      settings.set(key, !old)
      for (const l of listeners) if (l.key === key) l.handler(!old, old)
    },
  }
}

test('toggling units 10 times makes zero upstream calls and switches °C / °F', () =>
  withService({}, async ({ service, upstream }) => {
    const rendered = []
    const dashboard = new DashboardWeather(service, (session, sessionId, text) => rendered.push(text))
    const session = fakeSession('glasses-user')
    session.settings.onMentraosSettingChange(METRIC_SETTING, () => dashboard.onMetricSystemChanged(session, 's1'))

    await dashboard.handleLocationUpdate(session, 's1', { lat: 40.7128, lng: -74.006 })
    assert.equal(upstream.count, 1)
    assert.deepEqual(rendered, ['Clouds, 21°C'])

    for (let i = 0; i < 10; i++) session.toggle(METRIC_SETTING)
    assert.equal(upstream.count, 1, 'no upstream call for a unit toggle')
    assert.deepEqual(rendered.slice(1), Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? 'Clouds, 69°F' : 'Clouds, 21°C')))

    // Location updates around the block are answered from the cache, in the current unit.
    session.toggle(METRIC_SETTING)
    for (let i = 0; i < 5; i++) await dashboard.handleLocationUpdate(session, 's1', { lat: 40.7128 + i * 0.001, lng: -74.006 })
    assert.equal(upstream.count, 1)
    assert.equal(rendered.at(-1), 'Clouds, 69°F')
  }, answer.fixed(20.6)))

test('upstream trouble keeps the last good reading on screen', () =>
  withService({ staleTtlMs: 0 }, async ({ service, upstream }) => {
    const rendered = []
    const dashboard = new DashboardWeather(service, (session, sessionId, text) => rendered.push(text))
    const session = fakeSession('u')
    await dashboard.fetchWeatherData(session, 's', 1, 1)
    upstream.behave(answer.status(503))
    service.advanceTime(600_000)
    await dashboard.fetchWeatherData(session, 's', 1, 1)
    assert.deepEqual(rendered, ['Clouds, 10°C', 'Clouds, 10°C'])
  }, answer.fixed(10)))

test('formatWeather', () => {
  assert.equal(formatWeather({ condition: 'Rain', tempC: -3, tempF: 26 }, true), 'Rain, -3°C')
  assert.equal(formatWeather({ condition: 'Rain', tempC: -3, tempF: 26 }, false), 'Rain, 26°F')
})
