// `npm run bench`: weather-cache against the implementations a user would pick instead, side by
// side in one process (memory in child processes), all on the same simulated upstream.
//
//   node bench/run.mjs [--quick] [--only hit,burst,fleet,main,memory,tier,proxy,efficiency]
//
// Prints a table per scenario and the targets, and writes bench/results.json (a --quick run
// writes bench/results.local.json instead).
import { writeFileSync } from 'node:fs'
import os from 'node:os'

import { burst } from './scenarios/burst.mjs'
import { fleetTrace } from './scenarios/fleet.mjs'
import { hitPath } from './scenarios/hit-path.mjs'
import { mainThread } from './scenarios/main-thread.mjs'
import { memory } from './scenarios/memory.mjs'
import { tier } from './scenarios/tier.mjs'
import { proxyBench } from './scenarios/proxy.mjs'
import { proxyEfficiency } from './scenarios/proxy-efficiency.mjs'
import { redisServerInstalled } from '../lib/local-redis.mjs'

const args = process.argv.slice(2)
const quick = args.includes('--quick')
const onlyArg = args.find((a) => a.startsWith('--only'))
const only = onlyArg ? (onlyArg.split('=')[1] ?? args[args.indexOf(onlyArg) + 1]).split(',') : null
const wanted = (name) => !only || only.includes(name)

const fmt = (n, digits = 0) => (typeof n === 'number' ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : String(n))

function table(title, rows, columns) {
  const header = ['', ...columns.map(([label]) => label)]
  const body = Object.entries(rows).map(([name, row]) => [name, ...columns.map(([, get]) => get(row))])
  const widths = header.map((_, i) => Math.max(...[header, ...body].map((r) => String(r[i]).length)))
  const line = (r) => r.map((cell, i) => (i === 0 ? String(cell).padEnd(widths[i]) : String(cell).padStart(widths[i]))).join('  ')
  console.log(`\n${title}\n${line(header)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}`)
  for (const r of body) console.log(line(r))
}

const machine = {
  cpu: os.cpus()[0]?.model ?? 'unknown',
  cores: os.cpus().length,
  memoryGiB: Math.round(os.totalmem() / 2 ** 30),
  os: `${os.type()} ${os.release()} ${os.arch()}`,
  node: process.version,
  date: new Date().toISOString(),
  quick,
}
console.log(`weather-cache benchmarks on ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, Node ${machine.node}${quick ? ' (quick)' : ''}`)

const results = { machine }
const targets = []

if (wanted('hit')) {
  const r = (results.hitPath = await hitPath({ quick }))
  table('hit path: 1,000 cached users, await getWeather() in a loop', r, [
    ['ops/s', (x) => fmt(x.opsPerSec)],
    ['ns/op', (x) => fmt(x.nsPerOp)],
    ['p50 ns', (x) => fmt(x.p50Ns)],
    ['p99 ns', (x) => fmt(x.p99Ns)],
  ])
  const ours = r['weather-cache']
  targets.push({ target: 'hit path >= naive ops/s', value: ours.opsPerSec / r.naive.opsPerSec, limit: '>= 1', pass: ours.opsPerSec >= r.naive.opsPerSec })
  targets.push({ target: 'hit path >= 1.2x dashboard ops/s', value: ours.opsPerSec / r.dashboard.opsPerSec, limit: '>= 1.2', pass: ours.opsPerSec >= 1.2 * r.dashboard.opsPerSec })
  targets.push({ target: 'hit path >= lru-cache ops/s', value: ours.opsPerSec / r['lru-cache'].opsPerSec, limit: '>= 1', pass: ours.opsPerSec >= r['lru-cache'].opsPerSec })
  targets.push({ target: 'hit path within 2x of the N-API floor', value: ours.nsPerOp / r.floor.nsPerOp, limit: '<= 2', pass: ours.nsPerOp <= 2 * r.floor.nsPerOp })
}

if (wanted('burst')) {
  const r = (results.burst = await burst({ quick }))
  table('burst: simultaneous requests over 100 areas, cold cache, 20 ms upstream', r, [
    ['requests', (x) => fmt(x.requests)],
    ['upstream calls', (x) => fmt(x.upstreamCalls)],
    ['calls/area', (x) => fmt(x.callsPerArea, 2)],
    ['wall ms', (x) => fmt(x.wallMs)],
    ['p50 ms', (x) => fmt(x.p50Ms, 1)],
    ['p99 ms', (x) => fmt(x.p99Ms, 1)],
    ['failed', (x) => fmt(x.failed)],
  ])
  const ours = r['weather-cache']
  targets.push({ target: 'burst: one upstream call per area', value: ours.callsPerArea, limit: '== 1', pass: ours.upstreamCalls === ours.areas })
}

if (wanted('fleet')) {
  const r = (results.fleetTrace = await fleetTrace({ quick }))
  table(`fleet trace: ${fmt(r.drones)} drones, ${r.minutes} simulated minutes, a request per drone every 5 s`, r.results, [
    ['requests', (x) => fmt(x.requests)],
    ['upstream calls', (x) => fmt(x.upstreamCalls)],
    ['x ideal', (x) => fmt(x.vsIdeal, 3)],
    ['no-call ratio', (x) => fmt(x.hitRatio, 4)],
    ['cache hits', (x) => (x.cacheHitRatio === undefined ? '' : fmt(x.cacheHitRatio, 4))],
    ['wall s', (x) => (x.wallS === undefined ? '' : fmt(x.wallS, 1))],
  ])
  const ours = r.results['weather-cache']
  targets.push({ target: 'fleet trace: upstream calls within 1.05x of the ideal', value: ours.vsIdeal, limit: '<= 1.05', pass: ours.vsIdeal <= 1.05 })
}

if (wanted('main')) {
  const r = (results.mainThread = await mainThread({ quick }))
  table('main-thread cost: event-loop active time per request, 10 % misses', r, [
    ['requests', (x) => fmt(x.requests)],
    ['active ms', (x) => fmt(x.activeMs, 1)],
    ['µs/request', (x) => fmt(x.usPerRequest, 2)],
    ['ELU', (x) => fmt(x.utilization, 3)],
  ])
}

if (wanted('memory')) {
  const r = (results.memory = await memory({ quick }))
  table('memory: RSS growth (slope over the second half)', r, [
    ['bytes/user', (x) => fmt(x.bytesPerUser)],
    ['bytes/shared entry', (x) => fmt(x.bytesPerSharedEntry)],
  ])
  const ours = r['weather-cache']
  targets.push({ target: 'memory per tracked user', value: ours.bytesPerUser, limit: '<= 256 B', pass: ours.bytesPerUser <= 256 })
  targets.push({ target: 'memory per shared entry', value: ours.bytesPerSharedEntry, limit: '<= 512 B', pass: ours.bytesPerSharedEntry <= 512 })
}

if (wanted('tier')) {
  if (!redisServerInstalled()) {
    console.log('\nshared tier: SKIPPED (redis-server is not installed: apt-get install redis-server)')
  } else {
    const r = (results.tier = await tier({ quick }))
    const one = r.fleet.rows[0].upstreamCalls
    table(`shared tier: ${fmt(r.fleet.drones)} drones, ${r.fleet.minutes} simulated minutes, ${r.fleet.instances} instances`, Object.fromEntries(r.fleet.rows.map((row) => [row.label, row])), [
      ['upstream calls', (x) => fmt(x.upstreamCalls)],
      ['x one process', (x) => fmt(x.upstreamCalls / one, 2)],
      ['tier hits', (x) => fmt(x.tierHits)],
      ['local hit ratio', (x) => fmt(x.hitRatio, 4)],
    ])
    table(`shared tier: latency of ${r.latency.areas} requests each, 20 ms upstream`, { 'upstream miss': r.latency.upstreamMiss, 'tier (L2) hit': r.latency.tierHit, 'local hit': r.latency.localHit }, [
      ['p50 ms', (x) => fmt(x.p50Ms, 3)],
      ['p99 ms', (x) => fmt(x.p99Ms, 3)],
    ])
    const shared = r.fleet.rows[2].upstreamCalls / one
    targets.push({ target: 'shared tier: 4 instances within 1.05x of one process', value: shared, limit: '<= 1.05', pass: shared <= 1.05 })
  }
}

if (wanted('proxy')) {
  const r = (results.proxy = await proxyBench({ quick }))
  if (r.skipped) {
    console.log(`\nproxy: SKIPPED (${r.skipped})`)
  } else {
    const rows = Object.fromEntries(Object.entries(r).filter(([, v]) => typeof v === 'object'))
    table('drone proxy: wrk -t1 -c100, 2,000 drones jittering ~100 m over 40 km, 20 ms upstream (warm)', rows, [
      ['req/s', (x) => fmt(x.reqPerSec)],
      ['p50 ms', (x) => fmt(x.p50Ms, 2)],
      ['p99 ms', (x) => fmt(x.p99Ms, 2)],
      ['p99.9 ms', (x) => fmt(x.p999Ms, 2)],
      ['upstream calls', (x) => (x.upstreamCalls === undefined ? '' : fmt(x.upstreamCalls))],
      ['RSS MiB', (x) => (x.rssMiB === undefined ? '' : fmt(x.rssMiB, 1))],
      ['errors', (x) => fmt(x.errors + x.non2xx)],
    ])
    const ours = r['weather-cache serve --threads 1']
    console.log(`cold first run of weather-cache serve --threads 1: ${fmt(ours.cold.reqPerSec)} req/s, p99 ${fmt(ours.cold.p99Ms, 2)} ms, p99.9 ${fmt(ours.cold.p999Ms, 2)} ms`)
    if (r.note) console.log(r.note)
    const varnish = r['Varnish 7.1, 0.1 deg snap']
    if (varnish) {
      // One thread: wrk has the other core (see the README's "Drone proxy" for the default).
      targets.push({ target: 'proxy: req/s >= 1.5x Varnish', value: ours.reqPerSec / varnish.reqPerSec, limit: '>= 1.5', pass: ours.reqPerSec >= 1.5 * varnish.reqPerSec })
      targets.push({ target: "proxy: p99 <= Varnish's", value: ours.p99Ms / varnish.p99Ms, limit: '<= 1', pass: ours.p99Ms <= varnish.p99Ms })
    }
  }
}

// The proxy's CPU per request at a held rate, plain and over TLS (part of bench:proxy too).
if (wanted('proxy') || wanted('efficiency')) {
  const r = (results.proxyEfficiency = await proxyEfficiency({ quick }))
  if (r.skipped) {
    console.log(`\nproxy efficiency: SKIPPED (${r.skipped})`)
  } else {
    table(`proxy efficiency: h2load, ${r.clients} keep-alive connections holding ${fmt(r.offeredPerSec)} req/s for ${r.seconds} s, warm caches, 20 ms upstream`, r.rows, [
      ['req/s', (x) => fmt(x.reqPerSec)],
      ['CPU ms / 1k req', (x) => fmt(x.cpuMsPer1k, 1)],
      ['cores busy', (x) => fmt(x.cores, 2)],
      ['p50 ms', (x) => fmt(x.p50Ms, 2)],
      ['p99 ms', (x) => fmt(x.p99Ms, 2)],
      ['p99.9 ms', (x) => fmt(x.p999Ms, 2)],
      ['errors', (x) => fmt(x.errors)],
    ])
    for (const note of r.notes) console.log(note)
    const serve = r.rows['weather-cache serve, HTTP/1.1']
    const serveTls = r.rows['weather-cache serve, TLS HTTP/1.1']
    const varnish = r.rows['Varnish 7.1, HTTP/1.1']
    if (varnish) {
      targets.push({ target: "efficiency: CPU per request <= 0.5x Varnish's", value: serve.cpuMsPer1k / varnish.cpuMsPer1k, limit: '<= 0.5', pass: serve.cpuMsPer1k <= 0.5 * varnish.cpuMsPer1k })
      targets.push({ target: "efficiency: p99 (default threads) <= Varnish's", value: serve.p99Ms / varnish.p99Ms, limit: '<= 1', pass: serve.p99Ms <= varnish.p99Ms })
    }
    targets.push({ target: 'efficiency: TLS costs < 2x plain (CPU per request)', value: serveTls.cpuMsPer1k / serve.cpuMsPer1k, limit: '< 2', pass: serveTls.cpuMsPer1k < 2 * serve.cpuMsPer1k })
  }
}

results.targets = targets
table('targets', Object.fromEntries(targets.map((t) => [t.target, t])), [
  ['value', (t) => fmt(t.value, 3)],
  ['target', (t) => t.limit],
  ['', (t) => (t.pass ? 'met' : 'MISSED')],
])

const file = new URL(quick || only ? './results.local.json' : './results.json', import.meta.url)
writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`)
console.log(`\nwrote ${file.pathname}`)
