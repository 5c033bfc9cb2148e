// distanceKm, bucketKey, and proximity across the antimeridian and near the poles.
import assert from 'node:assert/strict'
import { test } from 'node:test'

import { bucketKey, distanceKm } from '../main.js'
import { withService } from './helpers.mjs'

/** The key formula as the TypeScript plan writes it (plus: 180 is -180, no "-0.00000"). */
function referenceKey(lat, lon, g = 0.045) {
  if (lon === 180) lon = -180
  const bucketLat = Math.round(lat / g) * g
  const lonStep = g / Math.max(Math.cos((bucketLat * Math.PI) / 180), 0.01)
  const bucketLon = Math.round(lon / lonStep) * lonStep
  const fixed = (x) => (x.toFixed(5) === '-0.00000' ? '0.00000' : x.toFixed(5))
  return `${fixed(bucketLat)}:${fixed(bucketLon)}`
}

test('distanceKm: known pairs (haversine, R = 6371 km)', () => {
  // Nashville to Los Angeles. 2887.26 km is the figure for R = 6372.8; R = 6371 gives 2886.44.
  assert.ok(Math.abs(distanceKm(36.12, -86.67, 33.94, -118.4) - 2886.444) < 0.001)
  assert.ok(Math.abs(distanceKm(36.12, -86.67, 33.94, -118.4) - 2887.26) < 1)
  assert.ok(Math.abs(distanceKm(0, 0, 0, 90) - (Math.PI * 6371) / 2) < 1e-9)
  assert.equal(distanceKm(51.5, -0.12, 51.5, -0.12), 0)
  assert.ok(Math.abs(distanceKm(0, 179.99, 0, -179.99) - 2.2239) < 1e-3, 'across the antimeridian')
  assert.ok(Math.abs(distanceKm(90, 0, 90, 180)) < 1e-9, 'both at the pole')
})

test('bucketKey matches the TypeScript formula on random points', () => {
  let seed = 12345
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31)
  for (let i = 0; i < 20_000; i++) {
    const lat = i % 4 === 0 ? (85 + random() * 5) * (random() < 0.5 ? -1 : 1) : random() * 180 - 90
    const lon = i % 4 === 1 ? (179 + random()) * (random() < 0.5 ? -1 : 1) : random() * 360 - 180
    const g = [0.045, 0.1, 0.027, 1][i % 4]
    assert.equal(bucketKey(lat, lon, g), referenceKey(lat, lon, g), `(${lat}, ${lon}, ${g})`)
  }
  assert.equal(bucketKey(36.12, -86.67), '36.13500:-86.64242')
  assert.equal(bucketKey(10.01, 10.01, 0.1), bucketKey(10.04, 10.04, 0.1))
})

test('bucketKey: -0 never prints, and 180 is the same meridian as -180', () => {
  assert.equal(bucketKey(-0, -0), '0.00000:0.00000')
  assert.equal(bucketKey(-0.01, -0.01), '0.00000:0.00000')
  assert.ok(!bucketKey(-0.02, -0.022).includes('-0.00000'))
  assert.equal(bucketKey(0, 180), bucketKey(0, -180))
  assert.equal(bucketKey(89.99, 180, 0.1), bucketKey(89.99, -180, 0.1))
})

test('a cached entry at (0, 179.99) serves a request at (0, -179.99)', () =>
  withService({ coordinateDecimals: 3, proximityKm: 5 }, async ({ service, upstream }) => {
    const east = await service.getForecast(null, 'east', 0, 179.99)
    const west = await service.getForecast(null, 'west', 0, -179.99)
    assert.equal(upstream.count, 1)
    assert.equal(west.meta.source, 'cache')
    assert.deepEqual(west.meta.location, east.meta.location)
  }))

test('near the poles: narrow cells and the pole itself are searched', () =>
  withService({}, async ({ service, upstream }) => {
    await service.getWeather(null, 'a', 89.99, 10)
    // 4 km away across the pole, at a longitude 160° further on.
    await service.getWeather(null, 'b', 89.98, -170)
    assert.equal(upstream.count, 1)
    await service.getWeather(null, 'c', -88.5, 45)
    await service.getWeather(null, 'd', -88.49, 46.2) // same polar row, neighbouring cell
    assert.equal(upstream.count, 2)
  }))
