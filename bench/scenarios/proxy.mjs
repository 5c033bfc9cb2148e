// The drone proxy under load: `weather-cache serve` against Varnish with a coordinate-snapping
// VCL, both in front of the same simulated OpenWeather (fixed 20 ms) in one run, driven by wrk
// (1 thread, 100 connections) with 2,000 drones jittering ~100 m over a 40 km city.
//
// Needs Debian's `wrk` (skipped with a note otherwise) and `varnish` (its row is skipped with a
// note otherwise). Reports req/s, p50/p99/p99.9, upstream calls and RSS of the proxy with one
// thread and with its default (a thread per core), a cold first run beside the warm one, and
// the load generator's own ceiling (the same script against the proxy's constant /healthz).
import { spawn, spawnSync } from 'node:child_process'
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

function wrk(url, scriptPath, seconds) {
  const run = spawnSync('wrk', ['-t1', '-c100', `-d${seconds}s`, '--timeout', '5s', '-s', scriptPath, url], { encoding: 'utf8' })
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

/** Starts `weather-cache serve` (with `flags`) on its own upstream; resolves once it listens. */
async function startServe(flags, children) {
  const upstream = await startUpstream({ latencyMs: 20 })
  const port = await freePort()
  const serve = spawn(process.execPath, [bin, 'serve', '--port', String(port), '--upstream', upstream.url, ...flags], {
    env: { ...process.env, OPEN_WEATHER_API_KEY: API_KEY },
    stdio: 'ignore',
  })
  children.push(serve)
  await waitForPort(port)
  return {
    url: `http://127.0.0.1:${port}`,
    async stop() {
      const upstreamCalls = (await upstream.stats()).requests
      const rss = rssMiB([serve.pid])
      serve.kill('SIGTERM')
      await upstream.close()
      return { upstreamCalls, rssMiB: rss }
    },
  }
}

export async function proxyBench({ quick }) {
  if (!installed('wrk', ['--version'])) {
    return { skipped: 'wrk is not installed (apt-get install wrk)' }
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
  const results = {}
  const children = []
  try {
    // wrk takes one of the cores; on a 2-core machine one proxy thread gets the other to itself.
    const one = await startServe(['--threads', '1'], children)
    const cold = wrk(one.url, script, seconds)
    const warm = wrk(one.url, script, seconds)
    const ceiling = wrk(one.url, ceilingScript, seconds)
    results['weather-cache serve --threads 1'] = { ...warm, cold, ...(await one.stop()) }

    // The default: a thread per core, sharing them with wrk.
    const threads = os.availableParallelism?.() ?? os.cpus().length
    const all = await startServe([], children)
    wrk(all.url, script, seconds) // warm-up
    results[`weather-cache serve (default: ${threads} threads)`] = { ...wrk(all.url, script, seconds), ...(await all.stop()) }

    // Varnish with a snapping VCL, against its own upstream (same latency) for its own count.
    if (installed('varnishd', ['-V'])) {
      const varnishUpstream = await startUpstream({ latencyMs: 20 })
      const vcl = path.join(dir, 'snap.vcl')
      writeFileSync(vcl, VCL(new URL(varnishUpstream.url).port))
      const varnishPort = await freePort()
      const varnish = spawn('varnishd', ['-F', '-a', `127.0.0.1:${varnishPort}`, '-f', vcl, '-n', path.join(dir, 'varnish'), '-s', 'malloc,256m', '-p', 'thread_pool_min=50'], {
        stdio: 'ignore',
      })
      children.push(varnish)
      await waitForPort(varnishPort)
      const vurl = `http://127.0.0.1:${varnishPort}`
      wrk(vurl, script, seconds) // warm-up, as for the proxy's cold run
      const warmV = wrk(vurl, script, seconds)
      results['Varnish 7.1, 0.1 deg snap'] = {
        ...warmV,
        upstreamCalls: (await varnishUpstream.stats()).requests,
        rssMiB: rssMiB([varnish.pid, ...childPids(varnish.pid)]),
      }
      varnish.kill('SIGTERM')
      await varnishUpstream.close()
    } else {
      results.note = 'Varnish is not installed (apt-get install varnish): its row is missing'
    }
    results['wrk ceiling (same script, constant answer)'] = ceiling
  } finally {
    for (const child of children) child.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  }
  return results
}
