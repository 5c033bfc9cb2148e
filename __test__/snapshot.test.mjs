// Warm restarts (`snapshot`, `serve --snapshot`), tested as processes: a SIGTERM restart answers
// known areas with 0 upstream calls and keeps a 429 cooldown and a spent day budget; `kill -9`
// in the middle of writes leaves a loadable file; bad files are set aside with one warning.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

import { WeatherService } from '../main.js'
import { recordingLogger, until } from './helpers.mjs'
import { startServe } from './serve-process.mjs'
import { API_KEY, answer, startUpstream } from './upstream.mjs'

const AREAS = [
  [48.85, 2.35],
  [51.5, -0.12],
  [40.71, -74.0],
  [-33.87, 151.21],
  [35.68, 139.69],
]

function scratch(t) {
  const dir = mkdtempSync(join(tmpdir(), 'weather-cache-snapshot-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** `serve --snapshot` on `upstream`; `stop()` sends SIGTERM and waits for the exit. */
async function serve(upstream, file, extra = []) {
  const proxy = await startServe(['--upstream', upstream.url, '--api-key', API_KEY, '--snapshot', file, ...extra])
  const get = async (lat, lon) => {
    const response = await fetch(`${proxy.url}/v1/weather?lat=${lat}&lon=${lon}`)
    return { status: response.status, body: await response.json() }
  }
  const stop = async () => {
    proxy.child.kill('SIGTERM')
    const exit = await proxy.exited
    assert.equal(exit.code, 0, exit.stderr)
    return exit
  }
  return { proxy, get, stop }
}

test('serve --snapshot: after a restart the areas are answered with 0 upstream calls, and a 429 cooldown holds', async (t) => {
  const file = join(scratch(t), 'cache.snap')
  const upstream = await startUpstream(answer.weather)
  t.after(() => upstream.close())
  const first = await serve(upstream, file)
  for (const [lat, lon] of AREAS) assert.equal((await first.get(lat, lon)).body.source, 'network')
  assert.equal(upstream.count, AREAS.length)
  await first.stop()
  assert.ok(existsSync(file), 'written on SIGTERM')

  const second = await serve(upstream, file)
  await until(() => /"msg":"weather.snapshot.restored".*"entries":5/.test(second.proxy.errors()), 'the restore, said on stderr')
  for (const [lat, lon] of AREAS) {
    const { status, body } = await second.get(lat + 0.001, lon)
    assert.deepEqual([status, body.source], [200, 'cache'])
  }
  assert.equal(upstream.count, AREAS.length, '0 upstream calls after the restart')
  // The provider says 429 for an hour: the restart must not ask again at once.
  upstream.behave(answer.rateLimited(3600))
  assert.equal((await second.get(10, 10)).status, 503)
  assert.equal(upstream.count, AREAS.length + 1)
  await second.stop()

  upstream.behave(answer.weather)
  const third = await serve(upstream, file)
  const refused = await third.get(20, 20)
  assert.equal(refused.status, 503)
  assert.equal(refused.body.error.code, 'ERR_RATE_LIMITED')
  assert.equal((await third.get(48.85, 2.35)).body.source, 'cache')
  assert.equal(upstream.count, AREAS.length + 1, 'the cooldown held across the restart')
  await third.stop()
})

test('serve --snapshot: a spent day budget holds across a restart', async (t) => {
  const file = join(scratch(t), 'cache.snap')
  const upstream = await startUpstream(answer.weather)
  t.after(() => upstream.close())
  const first = await serve(upstream, file, ['--budget-per-day', '2'])
  assert.equal((await first.get(...AREAS[0])).status, 200)
  assert.equal((await first.get(...AREAS[1])).status, 200)
  assert.equal((await first.get(...AREAS[2])).body.error.code, 'ERR_BUDGET_EXHAUSTED')
  await first.stop()
  const second = await serve(upstream, file, ['--budget-per-day', '2'])
  assert.equal((await second.get(...AREAS[3])).body.error.code, 'ERR_BUDGET_EXHAUSTED')
  assert.equal((await second.get(...AREAS[0])).body.source, 'cache')
  assert.equal(upstream.count, 2, 'no third call: the day was spent before the restart')
  await second.stop()
})

const main = fileURLToPath(new URL('../main.js', import.meta.url))

/** A process that fills a cache of `entries` areas, then snapshots it every 100 ms until killed. */
function busyWriter(file, entries) {
  const script = `
    import { WeatherService } from ${JSON.stringify(main)}
    const station = { name: 'station', fetch: async (lat, lon) => ({ celsius: 10 + (lat % 5), condition: 'Clouds' }) }
    const service = new WeatherService({ providers: [station], sharedCapacity: ${entries * 2}, maxUsers: 10, snapshot: { path: ${JSON.stringify(file)}, intervalMs: 100 } })
    for (let i = 0; i < ${entries}; i++) await service.getWeather(null, 'filler', -60 + (i % 200) * 0.5, -170 + Math.floor(i / 200) * 0.5)
    console.log('filled')
    setInterval(() => {}, 1000)
  `
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
  const filled = new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => String(d).includes('filled') && resolve())
    child.on('exit', (code) => reject(new Error(`writer exited ${code}`)))
  })
  return { child, filled, exited: new Promise((resolve) => child.on('exit', resolve)) }
}

/** Entries in the snapshot at `file` (0 when there is none yet). */
function saved(file) {
  if (!existsSync(file)) return 0
  const text = String(readFileSync(file))
  return JSON.parse(text.slice(text.indexOf('\n') + 1)).engine.entries.length
}

test('kill -9 while snapshots are being written always leaves a loadable file', async (t) => {
  const dir = scratch(t)
  const file = join(dir, 'cache.snap')
  let midWrite = 0
  for (let round = 0; round < 6; round++) {
    const writer = busyWriter(file, 20_000)
    await writer.filled
    while (saved(file) < 20_000) await new Promise((r) => setTimeout(r, 20))
    // Kill it while it writes: as soon as its temporary file shows.
    const deadline = Date.now() + 5_000
    while (!readdirSync(dir).some((name) => name.startsWith('.cache.snap.tmp-')) && Date.now() < deadline) await new Promise((r) => setImmediate(r))
    writer.child.kill('SIGKILL')
    await writer.exited
    if (readdirSync(dir).some((name) => name.startsWith('.cache.snap.tmp-'))) midWrite++
    const log = recordingLogger()
    const service = new WeatherService({ providers: [{ name: 'station', fetch: async () => ({ celsius: 0, condition: 'Clear' }) }], sharedCapacity: 40_000, snapshot: file, logger: log.logger })
    await until(() => log.records.length > 0, 'the restore event')
    const restored = log.find('weather.snapshot.restored')[0]
    assert.ok(restored, JSON.stringify(log.names()))
    assert.equal(restored.obj.entries, 20_000)
    assert.ok(!log.records.some((c) => c.level === 'warn'), JSON.stringify(log.names()))
    assert.equal(service.stats().sharedEntries, 20_000)
    service.close()
  }
  t.diagnostic(`${midWrite} of 6 kills left a temporary file (killed mid-write)`)
  assert.ok(midWrite > 0, 'at least one kill landed in the middle of a write')
})

test('a corrupt, truncated or foreign-version file: one warning, a cold start, the file kept aside', async (t) => {
  const dir = scratch(t)
  const file = join(dir, 'cache.snap')
  const upstream = await startUpstream(answer.weather)
  t.after(() => upstream.close())
  const make = (logger) => new WeatherService({ apiKey: API_KEY, baseUrl: upstream.url, snapshot: file, logger })
  const good = make(recordingLogger().logger)
  await good.getWeather(null, 'u', 48.85, 2.35)
  good.close()
  const valid = readFileSync(file)
  const damaged = Buffer.from(valid)
  damaged[damaged.length - 10] ^= 1
  const bad = {
    truncated: valid.subarray(0, valid.length - 20),
    damaged,
    'foreign version': Buffer.from(String(valid).replace('weather-cache-snapshot 1 ', 'weather-cache-snapshot 7 ')),
    'not ours': Buffer.from('{"hello":"world"}'),
  }
  for (const [what, bytes] of Object.entries(bad)) {
    writeFileSync(file, bytes)
    const log = recordingLogger()
    const service = make(log.logger)
    await until(() => log.records.length > 0, 'the warning')
    const warnings = log.records.filter((c) => c.level === 'warn')
    assert.equal(warnings.length, 1, `${what}: ${JSON.stringify(log.names())}`)
    assert.equal(warnings[0].msg, 'weather.snapshot.rejected')
    assert.deepEqual(readFileSync(warnings[0].obj.keptAs), bytes, `${what}: kept aside as it was`)
    assert.equal(service.stats().sharedEntries, 0, 'a cold start')
    assert.equal((await service.getForecast(null, 'u', 48.85, 2.35)).meta.source, 'network')
    service.close()
    assert.ok(valid.length > 0 && readFileSync(file).length > 0, 'a new snapshot beside the kept one')
    rmSync(warnings[0].obj.keptAs)
  }
})

test('snapshot option: checked', () => {
  assert.throws(() => new WeatherService({ snapshot: 5 }), { code: 'ERR_INVALID_ARG_TYPE', message: /options\.snapshot/ })
  assert.throws(() => new WeatherService({ snapshot: { path: '/tmp/x', intervalMs: 10 } }), { code: 'ERR_OUT_OF_RANGE', message: /options\.snapshot\.intervalMs/ })
  assert.throws(() => new WeatherService({ snapshot: '' }), { code: 'ERR_INVALID_ARG_VALUE', message: /options\.snapshot/ })
})
