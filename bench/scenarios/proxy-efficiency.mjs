// The drone proxy's efficiency: CPU time per 1,000 requests at a fixed offered rate, well below
// every contender's ceiling, so that each does the same work and what differs is what it costs.
// Throughput alone is capped by the load generator on this machine (wrk ~90k req/s, serve
// ~80k): at a held rate, CPU per request and latency are what tell proxies apart.
//
// Contenders, one after another in one run, each in front of its own simulated OpenWeather
// (fixed 20 ms), each snapping coordinates to 0.1 deg for its cache key where it has no notion
// of distance:
//   - `weather-cache serve` (default threads), plain HTTP/1.1, then over TLS (HTTP/1.1, and
//     HTTP/2 as a client would choose by ALPN);
//   - Varnish 7.1 with a snapping VCL. Varnish has no TLS: its TLS row is Varnish behind nginx
//     terminating TLS (hitch is not installed here), and its CPU is both processes';
//   - nginx 1.22 `proxy_cache`, the cache key snapped by `map`, plain and over TLS.
// The load: h2load (Debian's nghttp2-client), 50 keep-alive connections each holding a rate
// (`--rps`), over a list of 20,000 URIs of 2,000 drones jittering ~100 m over a 40 km city.
// h2load hands every connection that list from its start, so a run of S seconds asks about its
// first 100 x S URIs, each from all 50 connections at about the same time: mostly repeated
// questions (per-user hits here, hash hits for Varnish and nginx), not 2,000 drones each
// asking about its own place.
// CPU is utime + stime from /proc/PID/stat of the proxy's processes only (Varnish's manager and
// child, nginx's master and workers, serve's one Node process), read around each measured run,
// after a warm-up run that filled the caches. Latency is from h2load's per-request log. Each
// row is the median of three rounds over all contenders (one with --quick).
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { API_KEY, percentile, startUpstream } from '../harness.mjs'

const bin = fileURLToPath(new URL('../../bin/weather-cache.mjs', import.meta.url))
const installed = (command, args) => !spawnSync(command, args, { stdio: 'ignore' }).error

const CLIENTS = 50
/** Requests a second per connection: 50 x 100 = 5,000 req/s offered. */
const RPS_PER_CLIENT = 100
const TICKS_PER_SECOND = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim()) || 100

/** 2,000 drones over Paris (40 km), ten ~100 m jitters each, in a fixed order. */
function droneTargets() {
  let seed = 1
  const random = () => {
    seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31
    return seed / 2 ** 31
  }
  const drones = Array.from({ length: 2_000 }, () => ({ lat: 48.68 + random() * 0.36, lon: 2.08 + random() * 0.54 }))
  const targets = []
  for (let round = 0; round < 10; round++) {
    for (let i = 0; i < drones.length; i++) {
      const d = drones[(i * 7 + round * 13) % drones.length]
      const lat = d.lat + (random() - 0.5) * 0.0018
      const lon = d.lon + (random() - 0.5) * 0.0027
      targets.push(`/v1/weather?lat=${lat.toFixed(5)}&lon=${lon.toFixed(5)}&user=drone-${i}`)
    }
  }
  return targets
}

// Varnish's idea of the job: snap lat/lon to 0.1 degree (truncating), ask One Call about the
// snapped point, keep the answer 10 minutes.
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

const NGINX_COMMON = (dir) => `
worker_processes ${os.availableParallelism?.() ?? os.cpus().length};
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
daemon off;
user root;
events { worker_connections 4096; }
`

// nginx's proxy_cache with the same snapping (a map's regex captures make the key).
const NGINX_CACHE = (dir, upstreamPort, plainPort, tlsPort, cert, key) => `${NGINX_COMMON(dir)}
http {
  access_log off;
  proxy_cache_path ${dir}/cache levels=1:2 keys_zone=weather:16m max_size=256m inactive=10m use_temp_path=off;
  map $arg_lat $lat_snap { "~^(?<la>-?[0-9]+)(?<lb>\\.[0-9])?" "$la$lb"; default "x"; }
  map $arg_lon $lon_snap { "~^(?<lo>-?[0-9]+)(?<lp>\\.[0-9])?" "$lo$lp"; default "x"; }
  upstream onecall { server 127.0.0.1:${upstreamPort}; keepalive 64; }
  server {
    listen 127.0.0.1:${plainPort};
    listen 127.0.0.1:${tlsPort} ssl http2;
    ssl_certificate ${cert};
    ssl_certificate_key ${key};
    keepalive_requests 1000000;
    location = /v1/weather {
      proxy_cache weather;
      proxy_cache_key "$lat_snap,$lon_snap";
      proxy_cache_valid 200 10m;
      proxy_cache_lock on;
      proxy_ignore_headers Cache-Control Expires Set-Cookie X-Accel-Expires;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass http://onecall/data/3.0/onecall?lat=$lat_snap&lon=$lon_snap&exclude=minutely,hourly,daily,alerts&units=metric&appid=${API_KEY};
    }
  }
}
`

// nginx terminating TLS in front of Varnish (what hitch would do), no cache of its own.
const NGINX_TLS_FRONT = (dir, varnishPort, tlsPort, cert, key) => `${NGINX_COMMON(dir)}
http {
  access_log off;
  upstream varnish { server 127.0.0.1:${varnishPort}; keepalive 64; }
  server {
    listen 127.0.0.1:${tlsPort} ssl http2;
    ssl_certificate ${cert};
    ssl_certificate_key ${key};
    keepalive_requests 1000000;
    location / {
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass http://varnish;
    }
  }
}
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

/**
 * Stops a contender and everything it started: `signal` (nginx quits gracefully on SIGQUIT,
 * Varnish and serve on SIGTERM), then SIGKILL for whatever is left of the family after 5 s
 * (a master killed first would leave its workers running).
 */
async function stop(child, signal = 'SIGTERM') {
  // Each with its start time: a pid that ended meanwhile may have been reused by another process.
  const pids = family(child.pid).map((pid) => [pid, startTime(pid)])
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill(signal)
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5_000))])
  }
  for (const [pid, started] of pids) {
    if (started === undefined || startTime(pid) !== started) continue
    try {
      process.kill(pid, 'SIGKILL')
    } catch {}
  }
}

/** A process's start time (field 22 of /proc/PID/stat), `undefined` once it is gone. */
function startTime(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
  } catch {
    return undefined
  }
}

/** A process and its descendants (Varnish's child, nginx's workers). */
function family(pid) {
  let children = []
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number)
  } catch {}
  return [pid, ...children.flatMap(family)]
}

/** utime + stime of `pids` (every thread of each), in clock ticks. */
function cpuTicks(pids) {
  let ticks = 0
  for (const pid of pids) {
    try {
      // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      ticks += Number(fields[11]) + Number(fields[12])
    } catch {}
  }
  return ticks
}

/** One h2load run at the held rate; its requests, latency percentiles and errors. */
function h2load(base, targets, dir, { seconds, h1 }) {
  const uris = path.join(dir, 'uris.txt')
  // The first URI carries the scheme, host and port; h2load takes the others' paths.
  writeFileSync(uris, [`${base}${targets[0]}`, ...targets.slice(1)].join('\n'))
  const log = path.join(dir, 'h2load.log')
  rmSync(log, { force: true }) // h2load appends to it
  const args = ['-c', String(CLIENTS), '--rps', String(RPS_PER_CLIENT), '-D', String(seconds), '-t', '1', '-i', uris, '--log-file', log, ...(h1 ? ['--h1'] : [])]
  const run = spawnSync('h2load', args, { encoding: 'utf8', timeout: (seconds + 60) * 1_000 })
  const done = /requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(run.stdout)
  if (!done) throw new Error(`h2load failed:\n${run.stdout}\n${run.stderr}`)
  const twoXX = Number(/status codes: (\d+) 2xx/.exec(run.stdout)?.[1] ?? 0)
  const durations = readFileSync(log, 'utf8')
    .trim()
    .split('\n')
    .map((line) => Number(line.split('\t')[2]) / 1_000)
    .sort((a, b) => a - b)
  return {
    requests: Number(done[1]),
    errors: Number(done[3]) + Number(done[4]) + (Number(done[2]) - twoXX),
    p50Ms: percentile(durations, 50),
    p99Ms: percentile(durations, 99),
    p999Ms: percentile(durations, 99.9),
  }
}

/** One measured run, with the CPU of `pids()` read around it. */
function measure(base, targets, dir, pids, { seconds, h1 }) {
  const processes = pids()
  const before = cpuTicks(processes)
  const started = process.hrtime.bigint()
  const run = h2load(base, targets, dir, { seconds, h1 })
  const wallS = Number(process.hrtime.bigint() - started) / 1e9
  const cpuMs = ((cpuTicks(processes) - before) / TICKS_PER_SECOND) * 1_000
  return { ...run, reqPerSec: Math.round(run.requests / seconds), cpuMs, cpuMsPer1k: (cpuMs / run.requests) * 1_000, cores: cpuMs / 1_000 / wallS }
}

function makeCertificate(dir) {
  const file = (name) => path.join(dir, name)
  const openssl = (...args) => execFileSync('openssl', args, { stdio: 'pipe' })
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']
  openssl('req', '-x509', ...ec, '-keyout', file('ca.key'), '-out', file('ca.pem'), '-days', '2', '-subj', '/CN=bench ca')
  writeFileSync(file('leaf.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n')
  openssl('req', ...ec, '-keyout', file('key.pem'), '-out', file('leaf.csr'), '-subj', '/CN=localhost')
  openssl('x509', '-req', '-in', file('leaf.csr'), '-CA', file('ca.pem'), '-CAkey', file('ca.key'), '-CAcreateserial', '-out', file('leaf.pem'), '-days', '2', '-extfile', file('leaf.ext'))
  writeFileSync(file('chain.pem'), readFileSync(file('leaf.pem'), 'utf8') + readFileSync(file('ca.pem'), 'utf8'))
  return { cert: file('chain.pem'), key: file('key.pem') }
}

export async function proxyEfficiency({ quick }) {
  if (!installed('h2load', ['--version'])) return { skipped: 'h2load is not installed (apt-get install nghttp2-client)' }
  if (!installed('openssl', ['version'])) return { skipped: 'openssl is not installed (apt-get install openssl)' }
  const seconds = quick ? 5 : 10
  // Rounds over every contender in turn; each row is the median of its rounds. This machine is
  // shared: a burst of someone else's work then lands on one round of one row, not a row.
  const rounds = quick ? 1 : 3
  const dir = mkdtempSync(path.join(os.tmpdir(), 'weather-cache-efficiency-'))
  chmodSync(dir, 0o755) // Varnish's worker runs as its own user and must read its files here
  const targets = droneTargets()
  const { cert, key } = makeCertificate(dir)
  const contenders = []
  const notes = []
  const children = []
  const upstreams = []
  const upstream = async () => {
    const started = await startUpstream({ latencyMs: 20 })
    upstreams.push(started)
    return started
  }
  const contender = (name, base, h1, pids) => contenders.push({ name, base, h1, pids, runs: [] })
  try {
    // Every contender runs from the start, each before its own upstream; only the one being
    // measured gets requests.
    const env = { ...process.env, OPEN_WEATHER_API_KEY: API_KEY }
    for (const tls of [false, true]) {
      const up = await upstream()
      const port = await freePort()
      const files = tls ? ['--tls-cert', cert, '--tls-key', key] : []
      const serve = spawn(process.execPath, [bin, 'serve', '--port', String(port), '--upstream', up.url, '--max-connections-per-ip', '1000', ...files], { env, stdio: 'ignore' })
      children.push(serve)
      await waitForPort(port)
      if (tls) {
        contender('weather-cache serve, TLS HTTP/1.1', `https://127.0.0.1:${port}`, true, () => [serve.pid])
        contender('weather-cache serve, TLS HTTP/2', `https://127.0.0.1:${port}`, false, () => [serve.pid])
      } else {
        contender('weather-cache serve, HTTP/1.1', `http://127.0.0.1:${port}`, true, () => [serve.pid])
      }
    }
    if (installed('varnishd', ['-V'])) {
      const up = await upstream()
      const vcl = path.join(dir, 'snap.vcl')
      writeFileSync(vcl, VCL(new URL(up.url).port))
      const varnishPort = await freePort()
      const varnish = spawn('varnishd', ['-F', '-a', `127.0.0.1:${varnishPort}`, '-f', vcl, '-n', path.join(dir, 'varnish'), '-s', 'malloc,256m'], { stdio: 'ignore' })
      children.push(varnish)
      await waitForPort(varnishPort)
      contender('Varnish 7.1, HTTP/1.1', `http://127.0.0.1:${varnishPort}`, true, () => family(varnish.pid))
      if (installed('nginx', ['-v'])) {
        const front = path.join(dir, 'front')
        mkdirSync(front, { recursive: true })
        const tlsPort = await freePort()
        writeFileSync(path.join(front, 'nginx.conf'), NGINX_TLS_FRONT(front, varnishPort, tlsPort, cert, key))
        const nginx = spawn('nginx', ['-p', front, '-c', path.join(front, 'nginx.conf'), '-e', path.join(front, 'error.log')], { stdio: 'ignore' })
        children.push(nginx)
        await waitForPort(tlsPort)
        contender('Varnish 7.1 behind nginx TLS, HTTP/1.1', `https://127.0.0.1:${tlsPort}`, true, () => [...family(varnish.pid), ...family(nginx.pid)])
      } else {
        notes.push('nginx is not installed: no TLS row for Varnish (it has no TLS of its own)')
      }
    } else {
      notes.push('Varnish is not installed (apt-get install varnish): its rows are missing')
    }
    if (installed('nginx', ['-v'])) {
      const up = await upstream()
      const cache = path.join(dir, 'nginx')
      mkdirSync(cache, { recursive: true })
      const [plainPort, tlsPort] = [await freePort(), await freePort()]
      writeFileSync(path.join(cache, 'nginx.conf'), NGINX_CACHE(cache, new URL(up.url).port, plainPort, tlsPort, cert, key))
      const nginx = spawn('nginx', ['-p', cache, '-c', path.join(cache, 'nginx.conf'), '-e', path.join(cache, 'error.log')], { stdio: 'ignore' })
      children.push(nginx)
      await waitForPort(plainPort)
      contender('nginx 1.22 proxy_cache, HTTP/1.1', `http://127.0.0.1:${plainPort}`, true, () => family(nginx.pid))
      contender('nginx 1.22 proxy_cache, TLS HTTP/1.1', `https://127.0.0.1:${tlsPort}`, true, () => family(nginx.pid))
      contender('nginx 1.22 proxy_cache, TLS HTTP/2', `https://127.0.0.1:${tlsPort}`, false, () => family(nginx.pid))
    } else {
      notes.push('nginx is not installed (apt-get install nginx): its rows are missing')
    }
    // Caches filled first, by a run as long as a measured one (so over the same URIs), then the rounds.
    for (const c of contenders) h2load(c.base, targets, dir, { seconds, h1: c.h1 })
    for (let round = 0; round < rounds; round++) {
      for (const c of contenders) c.runs.push(measure(c.base, targets, dir, c.pids, { seconds, h1: c.h1 }))
    }
  } finally {
    for (const child of children.reverse()) await stop(child, child.spawnargs[0] === 'nginx' ? 'SIGQUIT' : 'SIGTERM')
    for (const up of upstreams) await up.close().catch(() => {})
    rmSync(dir, { recursive: true, force: true })
  }
  const rows = Object.fromEntries(contenders.map((c) => [c.name, medianRun(c.runs)]))
  return { offeredPerSec: CLIENTS * RPS_PER_CLIENT, clients: CLIENTS, seconds, rounds, rows, notes }
}

/** Each figure's median over the rounds (the rounds themselves kept in `runs`). */
function medianRun(runs) {
  const median = (key) => {
    const sorted = runs.map((r) => r[key]).sort((a, b) => a - b)
    return sorted[Math.floor(sorted.length / 2)]
  }
  const keys = ['requests', 'errors', 'p50Ms', 'p99Ms', 'p999Ms', 'reqPerSec', 'cpuMs', 'cpuMsPer1k', 'cores']
  return { ...Object.fromEntries(keys.map((k) => [k, median(k)])), runs }
}
