// `npm run demo` / `weather-cache demo`: the fleet simulation on the embedded upstream.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

import { redisServerInstalled } from '../lib/local-redis.mjs'
import { needs } from './needs.mjs'

const bin = fileURLToPath(new URL('../bin/weather-cache.mjs', import.meta.url))

function demo(args) {
  return new Promise((resolve, reject) => {
    // No key and no upstream in the environment: the demo needs neither.
    const env = { ...process.env, OPEN_WEATHER_API_KEY: '', OPEN_WEATHER_BASE_URL: '' }
    const child = spawn(process.execPath, [bin, 'demo', ...args], { env })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('error', reject)
    child.on('exit', (code) => resolve({ code, stdout, stderr }))
  })
}

/** The counts of a summary: everything but timings. */
function counts(summary) {
  const { wallMs, p50Ms, p99Ms, ...rest } = summary
  return rest
}

test('demo --drones 200 --minutes 10 --json: far fewer upstream calls than requests, same counts for the same seed', async () => {
  const first = await demo(['--drones', '200', '--minutes', '10', '--json'])
  assert.equal(first.code, 0, first.stderr)
  const a = JSON.parse(first.stdout)
  for (const key of ['requests', 'upstreamCalls', 'naiveCalls', 'hitRatio', 'coalesced', 'rateLimited', 'p50Ms', 'p99Ms']) {
    assert.equal(typeof a[key], 'number', key)
  }
  assert.equal(a.requests, (200 + 5) * 120)
  assert.ok(a.upstreamCalls > 0 && a.upstreamCalls * 100 < a.requests, `${a.upstreamCalls} of ${a.requests}`)
  assert.ok(a.naiveCalls >= a.requests)
  assert.ok(a.hitRatio > 0.95)
  assert.equal(a.unanswered, 0)
  assert.equal(a.upstreamSeen.requests, a.upstreamCalls, 'every upstream call reached the simulated upstream')

  const second = await demo(['--drones', '200', '--minutes', '10', '--json'])
  assert.deepEqual(counts(JSON.parse(second.stdout)), counts(a))
})

test('demo --forecasts: Dashboard users show next-hour rain lines; products cost no extra upstream call', async () => {
  const run = await demo(['--drones', '100', '--minutes', '10', '--forecasts', '--json'])
  assert.equal(run.code, 0, run.stderr)
  const r = JSON.parse(run.stdout)
  assert.equal(r.forecasts.asked, 5 * 120, 'every Dashboard answer carried products')
  assert.equal(r.forecasts.upstreamCallsWithout, r.upstreamCalls, 'the same calls with and without products')
  assert.ok(r.upstreamCalls > 0)
  assert.equal(r.forecasts.lines.length, 5)
  for (const line of r.forecasts.lines) {
    assert.match(line, /^dashboard-user-\d: \w+, -?\d+°[CF] · (rain in \d+ min|rain now, for \d+ min|rain for the next hour|no rain this hour) · -?[\d.]+°[CF] next hour · Wind Advisory$/)
  }
  const table = await demo(['--drones', '100', '--minutes', '10', '--forecasts'])
  assert.match(table.stdout, /forecast products +600 +Dashboard answers with next hour, hourly and alerts: 0 extra upstream calls/)
  assert.match(table.stdout, /What the Dashboard users see last:\n {2}dashboard-user-1: /)
})

test('demo under a tight rate limit and faults: incidents are counted, and repeatable', async () => {
  const args = ['--drones', '150', '--minutes', '12', '--rate-limit-per-min', '4', '--fault-rate', '0.2', '--seed', '9', '--json']
  const [x, y] = await Promise.all([demo(args), demo(args)])
  assert.equal(x.code, 0, x.stderr)
  const a = JSON.parse(x.stdout)
  assert.ok(a.rateLimited > 0, 'the limit was hit')
  assert.ok(a.upstreamErrors > 0, 'faults happened')
  assert.deepEqual(counts(JSON.parse(y.stdout)), counts(a))
})

test('demo prints progress lines and a summary table without a TTY', async () => {
  const { code, stdout } = await demo(['--drones', '50', '--minutes', '3'])
  assert.equal(code, 0)
  assert.match(stdout, /\[#+\.*\] +\d+\/3 min/)
  for (const row of ['requests', 'upstream calls', 'hit ratio', 'coalesced waiters', 'rate-limit incidents', 'latency p50 / p99']) {
    assert.match(stdout, new RegExp(`^  ${row}`, 'm'), row)
  }
})

test('demo --providers openweather,open-meteo: OpenWeather rate-limits, Open-Meteo answers in its place', async () => {
  const { code, stdout, stderr } = await demo(['--drones', '300', '--minutes', '5', '--providers', 'openweather,open-meteo', '--json'])
  assert.equal(code, 0, stderr)
  const r = JSON.parse(stdout)
  assert.deepEqual(Object.keys(r.byProvider), ['openweather', 'open-meteo'])
  assert.ok(r.byProvider.openweather.rateLimited > 0, 'OpenWeather hit its 10/min limit')
  assert.ok(r.byProvider['open-meteo'].calls > 0, 'the flights failed over')
  assert.equal(r.unanswered, 0, 'nobody went without an answer')
  assert.deepEqual(
    Object.fromEntries(Object.entries(r.upstreamSeen.byProvider).map(([name, p]) => [name, p.requests])),
    { openweather: r.byProvider.openweather.calls, 'open-meteo': r.byProvider['open-meteo'].calls },
  )
})

test('demo rejects bad flags with exit code 2', async () => {
  for (const args of [['--drones', 'many'], ['--minutes', '0'], ['--fault-rate', '2'], ['--what'], ['--providers', 'openweather,darksky'], ['--providers', 'open-meteo,open-meteo']]) {
    const { code, stderr } = await demo(args)
    assert.equal(code, 2, args.join(' '))
    assert.match(stderr, /^weather-cache: /)
  }
})

test('demo --instances 4: the shared tier brings four instances near one process', async (t) => {
  if (!needs(t, redisServerInstalled(), 'redis-server is not installed (apt-get install redis-server)')) return
  const { code, stdout, stderr } = await demo(['--instances', '4', '--drones', '400', '--minutes', '20', '--json'])
  assert.equal(code, 0, stderr)
  const r = JSON.parse(stdout)
  const [one, alone, shared] = r.rows
  assert.deepEqual(r.rows.map((row) => row.instances), [1, 4, 4])
  assert.ok(alone.upstreamCalls > 2 * one.upstreamCalls, `nothing shared: ${alone.upstreamCalls} vs ${one.upstreamCalls}`)
  assert.ok(shared.upstreamCalls <= 1.5 * one.upstreamCalls, `shared tier: ${shared.upstreamCalls} vs ${one.upstreamCalls}`)
  assert.ok(shared.tierHits > 0)
  assert.ok(r.rows.every((row) => row.unanswered === 0 && row.requests === 400 * 240))
})

test('demo --redis without --instances is a usage error', async () => {
  const { code, stderr } = await demo(['--redis', 'redis://127.0.0.1:9'])
  assert.equal(code, 2)
  assert.match(stderr, /--redis goes with --instances/)
})

test('demo --restart-at: a warm restart (snapshot) makes fewer upstream calls than a cold one, and is repeatable', async () => {
  const args = ['--drones', '200', '--minutes', '12', '--restart-at', '6', '--json']
  const [x, y] = await Promise.all([demo(args), demo(args)])
  assert.equal(x.code, 0, x.stderr)
  const { withSnapshot: warm, withoutSnapshot: cold } = JSON.parse(x.stdout)
  assert.equal(warm.requests, cold.requests)
  assert.ok(warm.callsAfterRestart < cold.callsAfterRestart, `${warm.callsAfterRestart} vs ${cold.callsAfterRestart} calls after the restart`)
  assert.ok(warm.upstreamCalls < cold.upstreamCalls, `${warm.upstreamCalls} vs ${cold.upstreamCalls}`)
  const again = JSON.parse(y.stdout)
  assert.deepEqual(counts(again.withSnapshot), counts(warm))
  assert.deepEqual(counts(again.withoutSnapshot), counts(cold))
})
