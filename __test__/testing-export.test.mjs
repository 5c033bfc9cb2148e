// `weather-cache/testing`, as a user reaches it: through the package's `exports`, a
// `WeatherService` pointed at it, and the Dashboard example's own tests (examples/dashboard/test)
// run under node:test and under Bun in a project that depends on this package.
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

import { WeatherService } from 'weather-cache'
import * as testing from 'weather-cache/testing'
import { API_KEY, closedPort, startFakeOpenWeather, weatherAt } from 'weather-cache/testing'

import { needs } from './needs.mjs'
import * as suiteUpstream from './upstream.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))
const bun = join(root, 'node_modules', '.bin', 'bun')

/** A fake and a service pointed at it (manual clock, no jitter); both closed after `fn`. */
async function withFake(fn, fakeOptions = {}, serviceOptions = {}) {
  const fake = await startFakeOpenWeather(fakeOptions)
  const service = new WeatherService({ apiKey: fake.apiKey, baseUrl: fake.url, clock: 'manual', jitterRatio: 0, ...serviceOptions })
  try {
    return await fn({ fake, service })
  } finally {
    service.close()
    await fake.close()
  }
}

const failure = (promise) => promise.then(() => assert.fail('expected a rejection'), (error) => error)

test('the suite and the users share one implementation: __test__/upstream.mjs re-exports weather-cache/testing', () => {
  assert.equal(suiteUpstream.startFakeOpenWeather, testing.startFakeOpenWeather)
  assert.equal(suiteUpstream.startUpstream, testing.startUpstream)
  assert.equal(suiteUpstream.answer, testing.answer)
})

test('by default every place gets its own deterministic reading; a wrong key gets 401', () =>
  withFake(async ({ fake, service }) => {
    const { celsius, main } = weatherAt(48.85, 2.35)
    assert.deepEqual(await service.getWeather(null, 'u', 48.85, 2.35), { condition: main, tempC: Math.round(celsius), tempF: Math.round((celsius * 9) / 5 + 32) })
    const stranger = new WeatherService({ apiKey: 'not-the-key', baseUrl: fake.url })
    try {
      assert.equal(await stranger.getWeather(null, 'u', 10, 10), null)
    } finally {
      stranger.close()
    }
    assert.deepEqual(fake.calls.map((c) => [c.appid, c.status]), [[API_KEY, 200], ['not-the-key', 401]])
  }))

test('answers per place (the nearest within its radius) and a default for the rest; the call log', () =>
  withFake(async ({ fake, service }) => {
    fake.setDefault({ tempC: 0, condition: 'Snow' })
    fake.setPlace(40.7128, -74.006, { tempC: 20.6, condition: 'Clouds' })
    fake.setPlace(40.75, -74.006, { tempC: 30, condition: 'Clear' }, { withinKm: 10 })
    assert.deepEqual(await service.getWeather(null, 'a', 40.7128, -74.006), { condition: 'Clouds', tempC: 21, tempF: 69 })
    assert.deepEqual(await service.getWeather(null, 'b', 40.78, -74.006), { condition: 'Clear', tempC: 30, tempF: 86 })
    assert.deepEqual(await service.getWeather(null, 'c', 51.5, -0.12), { condition: 'Snow', tempC: 0, tempF: 32 })
    assert.deepEqual(
      fake.calls.map((c) => [c.path, c.rawLat, c.rawLon, c.status]),
      [
        ['/data/3.0/onecall', '40.71', '-74.01', 200],
        ['/data/3.0/onecall', '40.78', '-74.01', 200],
        ['/data/3.0/onecall', '51.50', '-0.12', 200],
      ],
    )
    assert.equal(fake.count, 3)
    fake.reset()
    assert.deepEqual(await service.getWeather(null, 'd', -33.87, 151.21), { ...weatherAtSummary(-33.87, 151.21) })
  }))

function weatherAtSummary(lat, lon) {
  const { celsius, main } = weatherAt(lat, lon)
  return { condition: main, tempC: Math.round(celsius), tempF: Math.round((celsius * 9) / 5 + 32) }
}

test('429 with Retry-After sets the cooldown; without it the service backs off by itself', () =>
  withFake(async ({ fake, service }) => {
    fake.setDefault({ status: 429, retryAfter: 30 })
    assert.equal((await failure(service.getForecast(null, 'u', 1, 1))).retryAfterMs, 30_000)
    const response = await fetch(`${fake.url}/data/3.0/onecall?lat=1&lon=1&appid=${fake.apiKey}`)
    assert.deepEqual([response.status, response.headers.get('retry-after'), (await response.json()).cod], [429, '30', 429])

    fake.setDefault({ status: 429 })
    service.advanceTime(30_000)
    const error = await failure(service.getForecast(null, 'u', 1, 1))
    // The second 429 in a row: initialBackoffMs (60 s), doubled.
    assert.deepEqual([error.code, error.retryAfterMs], ['ERR_RATE_LIMITED', 120_000])
    const bare = await fetch(`${fake.url}/data/3.0/onecall?lat=1&lon=1&appid=${fake.apiKey}`)
    assert.equal(bare.headers.get('retry-after'), null)
  }))

test('errors and malformed bodies reach the service as the real ones would', async () => {
  for (const [reply, code] of [
    [{ status: 503 }, 'ERR_UPSTREAM_STATUS'],
    [{ status: 500, message: 'boom' }, 'ERR_UPSTREAM_STATUS'],
    [{ malformed: 'not-json' }, 'ERR_UPSTREAM_INVALID_RESPONSE'],
    [{ malformed: 'no-temp' }, 'ERR_UPSTREAM_INVALID_RESPONSE'],
    [{ malformed: 'truncated' }, 'ERR_UPSTREAM_NETWORK'],
    [{ hang: true }, 'ERR_UPSTREAM_TIMEOUT'],
  ]) {
    await withFake(
      async ({ fake, service }) => {
        assert.equal((await failure(service.getForecast(null, 'u', 1, 1))).code, code, JSON.stringify(reply))
        assert.equal(await service.getWeather(null, 'v', 1, 1), null, 'getWeather resolves null')
        assert.equal(fake.calls[0].status, reply.hang ? undefined : reply.status ?? 200, JSON.stringify(reply))
      },
      { reply },
      { requestTimeoutMs: 300 },
    )
  }
})

test('latency: per reply and for every answer', () =>
  withFake(async ({ fake, service }) => {
    fake.setPlace(1, 1, { tempC: 5, delayMs: 150 })
    let started = Date.now()
    assert.equal((await service.getWeather(null, 'u', 1, 1)).tempC, 5)
    assert.ok(Date.now() - started >= 140, `answered after ${Date.now() - started} ms`)
    fake.setLatency(400)
    started = Date.now()
    assert.equal((await failure(service.getForecast(null, 'u', 20, 20))).code, 'ERR_UPSTREAM_TIMEOUT')
    assert.ok(Date.now() - started >= 290)
  }, {}, { requestTimeoutMs: 300 }))

test('close() ends requests left hanging; a closed port is an unreachable OpenWeather', async () => {
  const fake = await startFakeOpenWeather({ reply: { hang: true } })
  const service = new WeatherService({ apiKey: fake.apiKey, baseUrl: fake.url })
  try {
    const pending = failure(service.getForecast(null, 'u', 1, 1))
    while (fake.count === 0) await new Promise((resolve) => setTimeout(resolve, 5))
    await fake.close()
    assert.equal((await pending).code, 'ERR_UPSTREAM_NETWORK')
  } finally {
    service.close()
  }
  const nowhere = new WeatherService({ apiKey: API_KEY, baseUrl: `http://127.0.0.1:${await closedPort()}` })
  try {
    assert.equal((await failure(nowhere.getForecast(null, 'u', 1, 1))).code, 'ERR_UPSTREAM_NETWORK')
  } finally {
    nowhere.close()
  }
})

test('a reply it cannot give is refused with a TypeError that says why', async () => {
  const fake = await startFakeOpenWeather()
  try {
    for (const [reply, message] of [
      [{ tempC: '20' }, /tempC must be a finite number/],
      [{ status: 42 }, /status must be an HTTP status/],
      [{ malformed: 'html' }, /malformed must be one of not-json, no-temp, truncated/],
      [{ temp: 20 }, /a reply has tempC, status, malformed or hang/],
      [{ tempC: 20, delayMs: -1 }, /delayMs must be a number >= 0/],
    ]) {
      assert.throws(() => fake.setDefault(reply), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE', message })
    }
    assert.throws(() => fake.setPlace(91, 0, { tempC: 1 }), { code: 'ERR_INVALID_ARG_VALUE', message: /lat must be a number in \[-90, 90\]/ })
    await assert.rejects(startFakeOpenWeather({ reply: { status: 'x' } }), { code: 'ERR_INVALID_ARG_VALUE' })
  } finally {
    await fake.close()
  }
})

/** Runs a command; resolves with its exit code and output (the fake lives in the child). */
function run(command, args, cwd) {
  return new Promise((resolve, reject) => {
    // Without NODE_TEST_CONTEXT: the child is a test run of its own, not a part of this one.
    const { NODE_TEST_CONTEXT, ...env } = process.env
    const child = spawn(command, args, { cwd, env: { ...env, NO_COLOR: '1' } })
    let output = ''
    child.stdout.on('data', (d) => (output += d))
    child.stderr.on('data', (d) => (output += d))
    child.on('error', reject)
    child.on('exit', (code) => resolve({ code, output }))
  })
}

/**
 * A project that depends on this package (node_modules/weather-cache links the clone) holding
 * the Dashboard example's sources and tests, as a Dashboard developer's repository would.
 */
function exampleProject() {
  const dir = mkdtempSync(join(tmpdir(), 'weather-cache-example-'))
  for (const part of ['src', 'test']) cpSync(join(root, 'examples', 'dashboard', part), join(dir, part), { recursive: true })
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'dashboard-weather-tests', private: true, type: 'module' }))
  mkdirSync(join(dir, 'node_modules'))
  symlinkSync(root, join(dir, 'node_modules', 'weather-cache'), 'dir')
  return dir
}

test('the Dashboard example tests its handlers with weather-cache/testing under node:test', async () => {
  const dir = exampleProject()
  try {
    const { code, output } = await run(process.execPath, ['--test', 'test/dashboard-weather.node.mjs'], dir)
    assert.equal(code, 0, output)
    assert.match(output, /^# pass 3$/m)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('the Dashboard example tests its handlers with weather-cache/testing under Bun', async (t) => {
  const bunRuns = spawnSync(bun, ['--version'], { stdio: 'ignore' }).status === 0
  if (!needs(t, bunRuns, 'node_modules/.bin/bun does not run (installed with --ignore-scripts?)')) return
  const dir = exampleProject()
  try {
    const { code, output } = await run(bun, ['test', './test'], dir)
    assert.equal(code, 0, output)
    assert.match(output, /^ 3 pass$/m)
    assert.match(output, /^ 0 fail$/m)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
