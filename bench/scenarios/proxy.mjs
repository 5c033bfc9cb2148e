// The drone proxy under load: `weather-cache serve` against Varnish with a coordinate-snapping
// VCL, both in front of the same simulated OpenWeather (fixed 20 ms) in one run, driven by wrk
// (1 thread, 100 connections) with 2,000 drones jittering ~100 m over a 40 km city.
//
// Like for like, in two set-ups (the targets hold on these rows only):
// - both at their defaults, nothing pinned: serve runs a proxy thread per core, Varnish its
//   default thread pools, and wrk shares the cores with them;
// - both pinned to one core with `taskset`, wrk on another: serve's default then is one proxy
//   thread (it counts the cores it may run on), Varnish keeps its default pools on that core.
// Each proxy gets a cold first run and a warm one; the load generator's own ceiling is the same
// script against serve's constant /healthz, pinned like the rest.
//
// Needs Debian's `wrk` (the scenario is not measured otherwise), `varnish` (its rows) and
// `taskset` with two cores (the pinned rows); each row that cannot run says why.
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { API_KEY, startUpstream } from '../harness.mjs'

const bin = fileURLToPath(new URL('../../bin/weather-cache.mjs', import.meta.url))
const installed = (command, args) => !spawnSync(command, args, { stdio: 'ignore' }).error

const WRK_SCRIPT = `
-- 2,000 drones spread over a 40 km city (Paris), each request from one of them, jittered ~100 m.
math.randomseed(1)
local drones = {}
for i = 1, 2000 do
  drones[i] = { lat = 48.68 + math.random() * 0.36, lon = 2.08 + math.random() * 0.54 }
end
request = function()
  local i = math.random(2000)
  local d = drones[i]
  local lat = d.lat + (math.random() - 0.5) * 0.0018
  local lon = d.lon + (math.random() - 0.5) * 0.0027
  return wrk.format("GET", string.format("/v1/weather?lat=%.5f&lon=%.5f&user=drone-%d", lat, lon, i))
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('\\nRESULT {"requests":%d,"durationUs":%d,"p50Us":%d,"p99Us":%d,"p999Us":%d,"errors":%d,"non2xx":%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    e.connect + e.read + e.write + e.timeout, e.status))
end
`

// Varnish's idea of the same job: snap lat/lon to 0.1 degree (truncating), ask One Call about
// the snapped point, keep the answer 10 minutes.
const VCL = (upstreamPort) => `vcl 4.1;
backend upstream { .host = "127.0.0.1"; .port = "${upstreamPort}"; }
sub vcl_recv {
  if (req.url ~ "^/v1/weather") {
    set req.http.x-lat = regsub(req.url, "^.*[?&]lat=(-?[0-9]+)(\\.[0-9])?[0-9]*.*$", "\\1\\2");
    set req.http.x-lon = regsub(req.url, "^.*[?&]lon=(-?[0-9]+)(\\.[0-9])?[0-9]*.*$", "\\1\\2");
    set req.url = "/data/3.0/onecall?lat=" + req.http.x-lat + "&lon=" + req.http.x-lon + "&exclude=minutely,hourly,daily,alerts&units=metric&appid=${API_KEY}";
    unset req.http.cookie;
    return (hash);
  }
  return (synth(404, "not found"));
}
sub vcl_backend_response { set beresp.ttl = 10m; }
`

async function freePort() {
  const server = net.createServer()
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address()
  await new Promise((resolve) => server.close(resolve))
  return port
}

async function waitForPort(port, timeoutMs = 20_000) {
  const started = Date.now()
  for (;;) {
    const open = await new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => socket.end(() => resolve(true)))
      socket.on('error', () => resolve(false))
    })
    if (open) return
    if (Date.now() - started > timeoutMs) throw new Error(`nothing listens on ${port}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

function wrk(url, scriptPath, seconds, cpu) {
  const run = spawnSync(...pinned(cpu, 'wrk', ['-t1', '-c100', `-d${seconds}s`, '--timeout', '5s', '-s', scriptPath, url]), { encoding: 'utf8' })
  const line = run.stdout.split('\n').find((l) => l.startsWith('RESULT '))
  if (!line) throw new Error(`wrk failed:\n${run.stdout}\n${run.stderr}`)
  const r = JSON.parse(line.slice(7))
  return {
    reqPerSec: Math.round(r.requests / (r.durationUs / 1e6)),
    p50Ms: r.p50Us / 1000,
    p99Ms: r.p99Us / 1000,
    p999Ms: r.p999Us / 1000,
    errors: r.errors,
    non2xx: r.non2xx,
  }
}

/** Resident memory of processes, in MiB. */
function rssMiB(pids) {
  let kib = 0
  for (const pid of pids) {
    try {
      kib += Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1])
    } catch {}
  }
  return Math.round((kib / 1024) * 10) / 10
}

function childPids(pid) {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number)
  } catch {
    return []
  }
}

/** The CPUs `pid` may run on, as the kernel lists them ("0-1", "1"). */
function cpusOf(pid) {
  try {
    return /Cpus_allowed_list:\s+(\S+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]
  } catch {
    return undefined
  }
}

/** `command args` as spawn arguments, under `taskset -c cpu` when `cpu` is given. */
const pinned = (cpu, command, args) => (cpu === undefined ? [command, args] : ['taskset', ['-c', String(cpu), command, ...args]])

/** Starts `weather-cache serve` at its defaults on its own upstream; resolves once it listens. */
async function startServe(cpu, children) {
  const upstream = await startUpstream({ latencyMs: 20 })
  const port = await freePort()
  const serve = spawn(...pinned(cpu, process.execPath, [bin, 'serve', '--port', String(port), '--upstream', upstream.url]), {
    env: { ...process.env, OPEN_WEATHER_API_KEY: API_KEY },
    stdio: 'ignore',
  })
  children.push(serve)
  await waitForPort(port)
  return {
    url: `http://127.0.0.1:${port}`,
    async stop() {
      const upstreamCalls = (await upstream.stats()).requests
      const about = { upstreamCalls, rssMiB: rssMiB([serve.pid]), cpus: cpusOf(serve.pid) }
      serve.kill('SIGTERM')
      await upstream.close()
      return about
    },
  }
}

/** Starts varnishd at its defaults (but for the VCL) on its own upstream. */
async function startVarnish(cpu, dir, name, children) {
  const upstream = await startUpstream({ latencyMs: 20 })
  const vcl = path.join(dir, `${name}.vcl`)
  writeFileSync(vcl, VCL(new URL(upstream.url).port))
  const port = await freePort()
  const varnish = spawn(...pinned(cpu, 'varnishd', ['-F', '-a', `127.0.0.1:${port}`, '-f', vcl, '-n', path.join(dir, name)]), { stdio: 'ignore' })
  children.push(varnish)
  await waitForPort(port)
  return {
    url: `http://127.0.0.1:${port}`,
    async stop() {
      const pids = [varnish.pid, ...childPids(varnish.pid)]
      const about = { upstreamCalls: (await upstream.stats()).requests, rssMiB: rssMiB(pids), cpus: cpusOf(pids.at(-1)) }
      const exited = varnish.exitCode !== null || varnish.signalCode !== null ? null : once(varnish, 'exit')
      varnish.kill('SIGTERM')
      await exited // so that it is gone before the next proxy is measured
      await upstream.close()
      return about
    },
  }
}

/** Row labels of the like-for-like pairs the targets compare. */
export const LIKE_FOR_LIKE = [
  { label: 'both at defaults', serve: 'weather-cache serve, defaults', varnish: 'Varnish, defaults' },
  { label: 'both on one core', serve: 'weather-cache serve, one core', varnish: 'Varnish, one core' },
]
const CEILING = "wrk's ceiling (same script, constant /healthz), one core"

const targetsOf = (label) => ({ rps: `proxy, ${label}: req/s >= 1.5x Varnish`, p99: `proxy, ${label}: p99 <= Varnish's` })

/** The scenario's targets, as bench/targets.mjs declares them: two per like-for-like pair. */
export const PROXY_TARGETS = LIKE_FOR_LIKE.flatMap(({ label }) => [
  [targetsOf(label).rps, 'noisy', '>= 1.5'],
  [targetsOf(label).p99, 'noisy', '<= 1'],
])

/**
 * Judges each like-for-like pair of `proxyBench`'s result. A pair is compared only when both
 * rows exist and every request of both was answered 2xx: a proxy that fails fast (a 502 for
 * each request, say) would otherwise beat one that answers.
 */
export function judgeProxy(judge, result) {
  for (const { label, serve, varnish } of LIKE_FOR_LIKE) {
    const { rps, p99 } = targetsOf(label)
    const [ours, theirs] = [result.rows[serve], result.rows[varnish]]
    const failing = [[serve, ours], [varnish, theirs]].filter(([, row]) => row && row.errors + row.non2xx > 0)
    const why = !ours || !theirs
      ? (result.missing[serve] ?? result.missing[varnish] ?? 'a row is missing')
      : failing.length > 0
        ? failing.map(([name, row]) => `${name}: ${row.errors} socket errors and ${row.non2xx} answers other than 2xx/3xx`).join('; ')
        : null
    if (why) {
      judge.cannot(rps, why)
      judge.cannot(p99, why)
      continue
    }
    judge(rps, ours.reqPerSec / theirs.reqPerSec, ours.reqPerSec >= 1.5 * theirs.reqPerSec)
    judge(p99, ours.p99Ms / theirs.p99Ms, ours.p99Ms <= theirs.p99Ms)
  }
}

export async function proxyBench({ quick }) {
  if (!installed('wrk', ['--version'])) {
    return { skipped: 'wrk is not installed: apt-get install wrk' }
  }
  const seconds = quick ? 3 : 10
  const dir = mkdtempSync(path.join(os.tmpdir(), 'weather-cache-proxy-bench-'))
  chmodSync(dir, 0o755) // Varnish's worker runs as its own user and must read its files here
  const script = path.join(dir, 'drones.lua')
  writeFileSync(script, WRK_SCRIPT)
  // The same script, the same Lua work per request, to a constant answer (/healthz ignores the
  // query): what wrk itself can drive on this machine.
  const ceilingScript = path.join(dir, 'ceiling.lua')
  writeFileSync(ceilingScript, WRK_SCRIPT.replace('"/v1/weather?', '"/healthz?'))
  const result = { rows: {}, cold: {}, missing: {}, notes: [] }
  const children = []

  const varnishVersion = installed('varnishd', ['-V']) ? /varnish-(\d+\.\d+)/.exec(spawnSync('varnishd', ['-V'], { encoding: 'utf8' }).stderr)?.[1] ?? '?' : null
  const cores = os.availableParallelism?.() ?? os.cpus().length
  const pinning = !installed('taskset', ['-V']) ? 'taskset is not installed (util-linux)' : cores < 2 ? `one core here (${cores}): wrk needs a core of its own` : null
  // Pinned: wrk on the first core, the proxy on the second.
  const setups = [
    { pair: LIKE_FOR_LIKE[0], proxyCpu: undefined, wrkCpu: undefined },
    { pair: LIKE_FOR_LIKE[1], proxyCpu: 1, wrkCpu: 0, unavailable: pinning },
  ]
  let ceiling
  try {
    for (const { pair, proxyCpu, wrkCpu, unavailable } of setups) {
      if (unavailable) {
        result.missing[pair.serve] = result.missing[pair.varnish] = unavailable
        continue
      }
      const serve = await startServe(proxyCpu, children)
      result.cold[pair.serve] = wrk(serve.url, script, seconds, wrkCpu)
      const warm = wrk(serve.url, script, seconds, wrkCpu)
      if (proxyCpu !== undefined) ceiling = wrk(serve.url, ceilingScript, seconds, wrkCpu)
      result.rows[pair.serve] = { ...warm, ...(await serve.stop()) }

      if (!varnishVersion) {
        result.missing[pair.varnish] = 'varnishd is not installed: apt-get install varnish'
        continue
      }
      const cache = await startVarnish(proxyCpu, dir, `varnish-${proxyCpu ?? 'any'}`, children)
      result.cold[pair.varnish] = wrk(cache.url, script, seconds, wrkCpu)
      result.rows[pair.varnish] = { ...wrk(cache.url, script, seconds, wrkCpu), ...(await cache.stop()) }
    }
  } finally {
    for (const child of children) child.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  }
  if (ceiling) result.rows[CEILING] = ceiling
  for (const [label, why] of Object.entries(result.missing)) result.notes.push(`${label}: no row (${why})`)
  if (varnishVersion) result.notes.push(`Varnish is ${varnishVersion}, with a VCL snapping coordinates to 0.1 deg.`)
  return result
}
