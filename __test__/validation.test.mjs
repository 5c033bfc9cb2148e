// Bad input: a clear error with a Node-style code, nothing cached, no upstream call.
import assert from 'node:assert/strict'
import { test } from 'node:test'

import { WeatherService, bucketKey, distanceKm } from '../main.js'
import { withService } from './helpers.mjs'

const badCalls = [
  // [description, args, code, error class]
  ['lat as a string', [null, 'u', '10', 10], 'ERR_INVALID_ARG_TYPE', TypeError],
  ['long missing', [null, 'u', 10], 'ERR_INVALID_ARG_TYPE', TypeError],
  ['lat NaN', [null, 'u', NaN, 10], 'ERR_OUT_OF_RANGE', RangeError],
  ['long Infinity', [null, 'u', 10, Infinity], 'ERR_OUT_OF_RANGE', RangeError],
  ['lat 90.0001', [null, 'u', 90.0001, 0], 'ERR_OUT_OF_RANGE', RangeError],
  ['lat -91', [null, 'u', -91, 0], 'ERR_OUT_OF_RANGE', RangeError],
  ['long 180.5', [null, 'u', 0, 180.5], 'ERR_OUT_OF_RANGE', RangeError],
  ['long -181', [null, 'u', 0, -181], 'ERR_OUT_OF_RANGE', RangeError],
  ['lat as a BigInt', [null, 'u', 10n, 10], 'ERR_INVALID_ARG_TYPE', TypeError],
  ['userId a number (4 args)', [null, 42, 10, 10], 'ERR_INVALID_ARG_TYPE', TypeError],
  ['userId empty', [null, '', 10, 10], 'ERR_INVALID_ARG_VALUE', TypeError],
  ['userId of 257 bytes', [null, 'x'.repeat(257), 10, 10], 'ERR_INVALID_ARG_VALUE', TypeError],
  ['userId of 129 two-byte chars (258 bytes)', [null, 'é'.repeat(129), 10, 10], 'ERR_INVALID_ARG_VALUE', TypeError],
  ['userId of 10 MB', [null, 'y'.repeat(10_000_000), 10, 10], 'ERR_INVALID_ARG_VALUE', TypeError],
  ['3-arg form without a session', [null, 10, 10], 'ERR_INVALID_ARG_TYPE', TypeError],
  ['3-arg form, session without userId', [{}, 10, 10], 'ERR_INVALID_ARG_TYPE', TypeError],
  ['3-arg form, numeric session.userId', [{ userId: 7 }, 10, 10], 'ERR_INVALID_ARG_TYPE', TypeError],
  ['session a string', ['session', 'u', 10, 10], 'ERR_INVALID_ARG_TYPE', TypeError],
]

test('getWeather rejects bad input with a code, and makes no upstream call', () =>
  withService({}, async ({ service, upstream }) => {
    for (const [what, args, code, type] of badCalls) {
      const promise = service.getWeather(...args)
      assert.ok(promise instanceof Promise, `${what}: returns a Promise, never throws`)
      await assert.rejects(promise, (err) => {
        assert.equal(err.code, code, `${what}: ${err.message}`)
        assert.ok(err instanceof type, `${what}: ${err.constructor.name}`)
        return true
      })
    }
    assert.equal(upstream.count, 0)
    // Nothing was cached either: a valid request now fetches.
    await service.getWeather(null, 'u', 10, 10)
    assert.equal(upstream.count, 1)
  }))

test('error messages read like Node', () =>
  withService({}, async ({ service }) => {
    await assert.rejects(service.getWeather(null, 'u', '10', 10), {
      message: 'The "lat" argument must be of type number. Received type string (\'10\')',
    })
    await assert.rejects(service.getWeather(null, 'u', 0, 200), {
      message: 'The value of "long" is out of range. It must be >= -180 && <= 180. Received 200',
    })
    await assert.rejects(service.getWeather({}, 1, 2), {
      message: 'The "session.userId" property must be of type string. Received undefined',
    })
    await assert.rejects(service.getWeather(null, 'x'.repeat(300), 1, 2), {
      message: "The argument 'userId' must be a non-empty string of at most 256 bytes. Received a string of 300 bytes",
    })
  }))

test('boundary values are accepted: poles, both antimeridians, 256-byte ids', () =>
  withService({}, async ({ service }) => {
    for (const [lat, lon] of [[90, 0], [-90, 180], [0, -180], [0, 180]]) {
      assert.notEqual(await service.getWeather(null, 'u', lat, lon), null)
    }
    assert.notEqual(await service.getWeather(null, 'é'.repeat(128), 1, 1), null)
    assert.notEqual(await service.getWeather(undefined, 'u', -0, -0), null)
  }))

test('a hostile session (throwing getters) does not break the call', () =>
  withService({}, async ({ service }) => {
    const hostile = {
      get userId() {
        throw new Error('boom')
      },
      get logger() {
        throw new Error('boom')
      },
    }
    assert.notEqual(await service.getWeather(hostile, 'u', 1, 1), null)
    await assert.rejects(service.getWeather(hostile, 1, 1), { code: 'ERR_INVALID_ARG_TYPE' })
  }))

const badOptions = [
  [{ proximityKm: 0.5 }, 'ERR_OUT_OF_RANGE', /rounding|coordinateDecimals/],
  [{ proximityKm: 0.5, coordinateDecimals: 3 }, null],
  [{ proximityKm: '5' }, 'ERR_INVALID_ARG_TYPE'],
  [{ proximityKm: NaN }, 'ERR_OUT_OF_RANGE'],
  [{ gridDeg: 0 }, 'ERR_OUT_OF_RANGE'],
  [{ gridDeg: 45 }, 'ERR_OUT_OF_RANGE'],
  [{ freshTtlMs: -1 }, 'ERR_OUT_OF_RANGE'],
  [{ freshTtlMs: 1.5 }, 'ERR_OUT_OF_RANGE'],
  [{ sharedCapacity: 0 }, 'ERR_OUT_OF_RANGE'],
  [{ perUserCapacity: 0 }, 'ERR_OUT_OF_RANGE'],
  [{ maxUsers: 0 }, 'ERR_OUT_OF_RANGE'],
  [{ coordinateDecimals: 11 }, 'ERR_OUT_OF_RANGE'],
  [{ requestTimeoutMs: 0 }, 'ERR_OUT_OF_RANGE'],
  [{ coalesce: 'yes' }, 'ERR_INVALID_ARG_TYPE'],
  [{ clock: 'fake' }, 'ERR_INVALID_ARG_VALUE'],
  [{ preset: 'turbo' }, 'ERR_INVALID_ARG_VALUE'],
  [{ apiKey: 12345 }, 'ERR_INVALID_ARG_TYPE'],
  [{ baseUrl: 'not a url' }, 'ERR_INVALID_ARG_VALUE'],
  [{ baseUrl: 'ftp://example.com' }, 'ERR_INVALID_ARG_VALUE'],
  [{ jitterRatio: 1 }, 'ERR_OUT_OF_RANGE'],
  [{ maxBackoffMs: 10, initialBackoffMs: 20 }, 'ERR_OUT_OF_RANGE'],
  [{ logLevel: 'verbose' }, 'ERR_INVALID_ARG_VALUE'],
  [{ logger: 'console' }, 'ERR_INVALID_ARG_TYPE'],
]

test('invalid options throw from the constructor', () => {
  for (const [options, code, message] of badOptions) {
    if (code === null) {
      new WeatherService(options).close()
      continue
    }
    assert.throws(() => new WeatherService(options), (err) => {
      assert.equal(err.code, code, `${JSON.stringify(options)}: ${err.message}`)
      if (message) assert.match(err.message, message)
      return true
    })
  }
  assert.throws(() => new WeatherService('fast'), { code: 'ERR_INVALID_ARG_TYPE' })
  assert.throws(() => new WeatherService(null), { code: 'ERR_INVALID_ARG_TYPE' })
  new WeatherService().close()
  new WeatherService({}).close()
})

test('clearUser and advanceTime check their arguments', () =>
  withService({}, async ({ service }) => {
    assert.throws(() => service.clearUser(), { code: 'ERR_INVALID_ARG_TYPE' })
    assert.throws(() => service.clearUser(''), { code: 'ERR_INVALID_ARG_VALUE' })
    assert.throws(() => service.advanceTime(-1), { code: 'ERR_OUT_OF_RANGE' })
    assert.throws(() => service.advanceTime('1'), { code: 'ERR_INVALID_ARG_TYPE' })
    const system = new WeatherService({ clock: 'system' })
    assert.throws(() => system.advanceTime(1000), { code: 'ERR_INVALID_STATE' })
    system.close()
  }))

test('distanceKm and bucketKey check their arguments', () => {
  assert.throws(() => distanceKm(0, 0, 0), { code: 'ERR_INVALID_ARG_TYPE' })
  assert.throws(() => distanceKm(0, 0, 91, 0), { code: 'ERR_OUT_OF_RANGE' })
  assert.throws(() => bucketKey('a', 0), { code: 'ERR_INVALID_ARG_TYPE' })
  assert.throws(() => bucketKey(0, 0, 0), { code: 'ERR_OUT_OF_RANGE' })
  assert.throws(() => bucketKey(0, 0, Infinity), { code: 'ERR_OUT_OF_RANGE' })
})
