// `weather-cache serve` on the open internet (issue 21), as a real process: TLS with a CA the
// test makes (checked by curl and by Node's own TLS client), HTTP/2 by ALPN, named clients from
// a tokens file and their reload on SIGHUP, per-client limits, per-address connection caps,
// --trust-proxy, /readyz, request ids and the access log's reopening.
import assert from 'node:assert/strict'
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import http2 from 'node:http2'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Duplex } from 'node:stream'
import { test } from 'node:test'
import tls from 'node:tls'

import { port, rawClient, sample, sleep, spawnServe, startServe, withProxy } from './serve-process.mjs'
import { API_KEY, answer, startUpstream } from './upstream.mjs'

const installed = (command, args) => !spawnSync(command, args, { stdio: 'ignore' }).error
// CI installs curl and openssl (.ci/run): there these tests must run, never skip.
const noTools = !(installed('curl', ['--version']) && installed('openssl', ['version'])) && 'curl and openssl are needed (apt-get install curl openssl)'
if (noTools && process.env.CI) throw new Error('CI is set but curl or openssl is missing: .ci/run must install them')

const tempDir = (name) => mkdtempSync(join(tmpdir(), `weather-cache-${name}-`))

/**
 * A root CA, an intermediate, and a leaf for 127.0.0.1 and localhost signed by the
 * intermediate, in `dir` under `prefix`: `<prefix>-root.pem` (what clients trust),
 * `<prefix>-chain.pem` (leaf then intermediate: what the proxy serves) and `<prefix>-key.pem`.
 */
function makeCertificates(dir, prefix) {
  const file = (name) => join(dir, `${prefix}-${name}`)
  const openssl = (...args) => execFileSync('openssl', args, { stdio: 'pipe' })
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']
  openssl('req', '-x509', ...ec, '-keyout', file('root.key'), '-out', file('root.pem'), '-days', '2', '-subj', `/CN=${prefix} test root`)
  writeFileSync(file('ca.ext'), 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n')
  openssl('req', ...ec, '-keyout', file('inter.key'), '-out', file('inter.csr'), '-subj', `/CN=${prefix} test intermediate`)
  openssl('x509', '-req', '-in', file('inter.csr'), '-CA', file('root.pem'), '-CAkey', file('root.key'), '-CAcreateserial', '-out', file('inter.pem'), '-days', '2', '-extfile', file('ca.ext'))
  writeFileSync(file('leaf.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n')
  openssl('req', ...ec, '-keyout', file('key.pem'), '-out', file('leaf.csr'), '-subj', '/CN=localhost')
  openssl('x509', '-req', '-in', file('leaf.csr'), '-CA', file('inter.pem'), '-CAkey', file('inter.key'), '-CAcreateserial', '-out', file('leaf.pem'), '-days', '2', '-extfile', file('leaf.ext'))
  writeFileSync(file('chain.pem'), readFileSync(file('leaf.pem'), 'utf8') + readFileSync(file('inter.pem'), 'utf8'))
  return { root: file('root.pem'), chain: file('chain.pem'), key: file('key.pem') }
}

/**
 * curl as the checking client: `{ code, version, body, stderr, status }`. Asynchronous: the
 * upstream the proxy asks runs in this process and must keep answering meanwhile.
 */
function curl(url, args = []) {
  return new Promise((resolve) => {
    const child = spawn('curl', ['-sS', '--max-time', '10', '-o', '-', '-w', '\n%{http_code} %{http_version}', ...args, url])
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('exit', (status) => {
      const lines = stdout.split('\n')
      const [code, version] = lines.pop().split(' ')
      resolve({ code: Number(code), version, body: lines.join('\n'), stderr, status })
    })
  })
}

/** A GET with Node's http client, from `localAddress` if given: `{ status, headers, body }`. */
function httpGet(url, { headers = {}, localAddress } = {}) {
  return new Promise((resolve, reject) => {
    const request = http.get(url, { headers, localAddress, agent: false }, (res) => {
      let body = ''
      res.on('data', (d) => (body += d))
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }))
    })
    request.on('error', reject)
  })
}

/** `weather-cache serve` run to its exit, or killed after `ms`: `{ code, stdout, stderr }`. */
function runServeFor(ms, args, env) {
  return new Promise((resolve) => {
    const child = spawnServe(args, { env: { ...process.env, ...env } })
    let stdout = ''
    let stderr = ''
    const timer = setTimeout(() => child.kill('SIGKILL'), ms)
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('exit', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

/** Waits until the proxy's stderr matches `pattern` (after a signal). */
async function stderrMatches(proxy, pattern) {
  for (let waited = 0; !pattern.test(proxy.errors()); waited += 20) {
    if (waited > 5_000) throw new Error(`stderr never matched ${pattern}:\n${proxy.errors()}`)
    await sleep(20)
  }
}

test('TLS: HTTPS with a chain, HTTP/2 by ALPN beside HTTP/1.1, checked against the test CA; SIGHUP swaps the certificate without dropping a connection', { skip: noTools }, async () => {
  const dir = tempDir('tls')
  const first = makeCertificates(dir, 'first')
  const second = makeCertificates(dir, 'second')
  const served = { chain: join(dir, 'served-chain.pem'), key: join(dir, 'served-key.pem') }
  writeFileSync(served.chain, readFileSync(first.chain))
  writeFileSync(served.key, readFileSync(first.key))
  await withProxy(answer.weather, async ({ proxy }) => {
    assert.match(proxy.url, /^https:\/\/127\.0\.0\.1:\d+$/)
    const url = `${proxy.url}/v1/weather?lat=48.85&lon=2.35`
    const h2 = await curl(url, ['--cacert', first.root, '--http2'])
    assert.deepEqual([h2.code, h2.version], [200, '2'], h2.stderr)
    assert.equal(JSON.parse(h2.body).condition.length > 0, true)
    const h1 = await curl(url, ['--cacert', first.root, '--http1.1'])
    assert.deepEqual([h1.code, h1.version], [200, '1.1'], h1.stderr)
    const untrusted = await curl(url, ['--cacert', second.root])
    assert.notEqual(untrusted.status, 0, 'a client that trusts another CA refuses the proxy')
    assert.notEqual((await curl(`http://127.0.0.1:${port(proxy)}/healthz`)).status, 0, 'plain HTTP to the TLS port is not served')

    // An HTTP/2 session opened under the first certificate...
    const session = http2.connect(proxy.url, { ca: readFileSync(first.root) })
    const ask = () =>
      new Promise((resolve, reject) => {
        const stream = session.request({ ':path': '/v1/weather?lat=48.85&lon=2.35' })
        let body = ''
        stream.on('response', (headers) => stream.on('data', (d) => (body += d)).on('end', () => resolve({ status: headers[':status'], body })))
        stream.on('error', reject)
      })
    assert.equal((await ask()).status, 200)
    // ...the files replaced and SIGHUP: new connections get the second certificate...
    writeFileSync(served.chain, readFileSync(second.chain))
    writeFileSync(served.key, readFileSync(second.key))
    proxy.child.kill('SIGHUP')
    await stderrMatches(proxy, /SIGHUP, reloaded the certificate/)
    assert.equal((await curl(url, ['--cacert', second.root, '--http2'])).code, 200)
    assert.notEqual((await curl(url, ['--cacert', first.root])).status, 0, 'the first certificate is no longer served')
    // ...and the open session goes on under the first.
    assert.equal((await ask()).status, 200)
    session.close()

    // A broken key on SIGHUP: a warning, and the certificate served stays.
    writeFileSync(served.key, 'not a key\n')
    proxy.child.kill('SIGHUP')
    await stderrMatches(proxy, /"level":40,.*"msg":"reload: cannot read the private key .*the previous certificate stays/)
    assert.equal((await curl(url, ['--cacert', second.root])).code, 200)
    const metrics = (await curl(`${proxy.url}/metrics`, ['--cacert', second.root])).body
    assert.equal(sample(metrics, 'weather_cache_proxy_reloads_total'), 2)
    assert.equal(sample(metrics, 'weather_cache_proxy_reload_failures_total'), 1)
    assert.ok(sample(metrics, 'weather_cache_proxy_tls_handshake_failures_total') >= 2, 'the refused handshakes are counted')
  }, ['--tls-cert', served.chain, '--tls-key', served.key])
})

test('TLS: a bad certificate or key exits 2 with a message, as does one of the pair alone', { skip: noTools }, async () => {
  const { runServe } = await import('./serve-process.mjs')
  const dir = tempDir('tls-bad')
  const good = makeCertificates(dir, 'good')
  const other = makeCertificates(dir, 'other')
  writeFileSync(join(dir, 'empty.pem'), '')
  for (const [args, message] of [
    [['--tls-cert', good.chain], /--tls-cert and --tls-key go together/],
    [['--tls-cert', join(dir, 'missing.pem'), '--tls-key', good.key], /cannot read the certificate/],
    [['--tls-cert', join(dir, 'empty.pem'), '--tls-key', good.key], /holds no PEM certificate/],
    [['--tls-cert', good.chain, '--tls-key', other.key], /do not make a TLS configuration/],
  ]) {
    const { code, stderr } = await runServe(['--port', '0', ...args], { OPEN_WEATHER_API_KEY: API_KEY })
    assert.equal(code, 2, args.join(' '))
    assert.match(stderr, message)
    assert.ok(!stderr.includes('PRIVATE KEY'), 'no key material in the message')
  }
})

test('TLS: a connection past the limit gets its 503 over TLS (HTTP/1.1 offered), not a torn handshake', { skip: noTools }, async () => {
  const dir = tempDir('tls-refused')
  const certs = makeCertificates(dir, 'refused')
  await withProxy(answer.weather, async ({ proxy }) => {
    const held = rawClient(port(proxy))
    await sleep(100)
    const refused = await curl(`${proxy.url}/healthz`, ['--cacert', certs.root, '--http2'])
    assert.deepEqual([refused.code, refused.version], [503, '1.1'], refused.stderr)
    assert.equal(JSON.parse(refused.body).error.code, 'ERR_TOO_MANY_CONNECTIONS')
    held.socket.destroy()
  }, ['--tls-cert', certs.chain, '--tls-key', certs.key, '--max-connections', '1'])
})

test('--tokens-file: named clients, their names (never tokens) in the access log and /metrics; SIGHUP removes a token at once while its request in flight finishes', async () => {
  const dir = tempDir('tokens')
  const tokens = join(dir, 'tokens')
  const log = join(dir, 'access.log')
  writeFileSync(tokens, '# the fleet\nalpha alpha-t0ken-1\nbeta  beta-t0ken-2\n')
  const upstream = await startUpstream(answer.weather)
  const proxy = await startServe(['--upstream', upstream.url, '--tokens-file', tokens, '--access-log', log], { OPEN_WEATHER_API_KEY: API_KEY })
  const get = (path, token, headers = {}) => fetch(`${proxy.url}${path}`, { headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers } })
  try {
    assert.equal((await get('/v1/weather?lat=10&lon=10', 'alpha-t0ken-1', { 'x-request-id': 'drone-7:abc' })).headers.get('x-request-id'), 'drone-7:abc')
    assert.equal((await get('/v1/weather?lat=10&lon=10', 'beta-t0ken-2')).status, 200)
    assert.equal((await get('/v1/weather?lat=10&lon=10', 'gamma')).status, 401)
    assert.equal((await get('/v1/weather?lat=10&lon=10')).status, 401)

    // beta's request waits on a slow upstream while its token is removed.
    upstream.behave(answer.delayed(600))
    const inFlight = get('/v1/weather?lat=-20&lon=30', 'beta-t0ken-2')
    while (upstream.count < 2) await sleep(5)
    writeFileSync(tokens, 'alpha alpha-t0ken-1\n')
    // logrotate: the log moved away, then SIGHUP.
    renameSync(log, `${log}.1`)
    proxy.child.kill('SIGHUP')
    await stderrMatches(proxy, /SIGHUP, reloaded 1 clients, the access log/)
    assert.equal((await get('/v1/weather?lat=10&lon=10', 'beta-t0ken-2')).status, 401, 'removed: refused at once')
    assert.equal((await get('/v1/weather?lat=10&lon=10', 'alpha-t0ken-1')).status, 200)
    const finished = await inFlight
    assert.equal(finished.status, 200, 'admitted before the reload: it finishes')

    // A broken file on SIGHUP: a warning, and the clients stay as they were.
    writeFileSync(tokens, 'alpha\n')
    proxy.child.kill('SIGHUP')
    await stderrMatches(proxy, /"level":40,.*"msg":"reload: the tokens file .*line 1: expected \\"name token\\".*the previous tokens stay/)
    assert.ok(!proxy.errors().includes('t0ken'), 'no token in any message')
    assert.equal((await get('/v1/weather?lat=10&lon=10', 'alpha-t0ken-1')).status, 200)

    const metrics = await (await get('/metrics', 'alpha-t0ken-1')).text()
    assert.equal(sample(metrics, 'weather_cache_proxy_client_requests_total{client="alpha"}'), 4)
    assert.equal(sample(metrics, 'weather_cache_proxy_client_requests_total{client="beta"}'), 2)
    assert.equal(sample(metrics, 'weather_cache_proxy_client_upstream_calls_total{client="alpha"}'), 1)
    assert.equal(sample(metrics, 'weather_cache_proxy_client_upstream_calls_total{client="beta"}'), 1)
    assert.ok(!metrics.includes('t0ken'))
  } finally {
    proxy.child.kill('SIGTERM')
    await proxy.exited
    await upstream.close()
  }
  const before = readFileSync(`${log}.1`, 'utf8').trim().split('\n').map((l) => JSON.parse(l))
  const after = readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l))
  assert.deepEqual(before.map((l) => [l.clientName, l.status]), [['alpha', 200], ['beta', 200], [null, 401], [null, 401]])
  assert.equal(before[0].requestId, 'drone-7:abc')
  // Lines logged after the reopen land in the new file (the in-flight one included).
  assert.deepEqual(after.map((l) => [l.clientName, l.status]).slice(0, 3), [[null, 401], ['alpha', 200], ['beta', 200]])
  for (const line of [...before, ...after]) assert.equal(line.client, '127.0.0.1')
  const text = readFileSync(log, 'utf8') + readFileSync(`${log}.1`, 'utf8')
  assert.ok(!text.includes('t0ken'), 'no token in the access log')
})

test('--client-rate-limit and --client-upstream-limit: 429 with Retry-After to that client only, counted; hits still answered', async () => {
  const dir = tempDir('limits')
  writeFileSync(join(dir, 'tokens'), 'alpha alpha-t0ken\nbeta beta-t0ken\ngamma gamma-t0ken\n')
  await withProxy(answer.weather, async ({ get, upstream }) => {
    const as = (token, path) => get(path, { headers: { authorization: `Bearer ${token}` } })
    // Upstream calls: alpha walks the globe; its third new area is refused before any call.
    assert.equal((await as('alpha-t0ken', '/v1/weather?lat=10&lon=10')).status, 200)
    assert.equal((await as('alpha-t0ken', '/v1/weather?lat=-40&lon=100')).status, 200)
    const walking = await as('alpha-t0ken', '/v1/weather?lat=60&lon=-120')
    assert.equal(walking.status, 429)
    assert.equal((await walking.json()).error.code, 'ERR_CLIENT_UPSTREAM_LIMITED')
    const wait = Number(walking.headers.get('retry-after'))
    assert.ok(wait >= 1 && wait <= 30, `Retry-After ${wait}`)
    assert.equal(upstream.count, 2, 'the refused request cost nothing')
    assert.equal((await as('alpha-t0ken', '/v1/weather?lat=10.01&lon=10')).status, 200, 'a cached area is still answered')
    assert.equal((await as('beta-t0ken', '/v1/weather?lat=60&lon=-120')).status, 200, 'another client is unaffected')
    assert.equal(upstream.count, 3)
    // Requests a second: gamma sends ten at once; four are answered (a second's worth), the
    // rest get 429 (a fifth if a token came back meanwhile).
    const burst = await Promise.all(Array.from({ length: 10 }, () => as('gamma-t0ken', '/v1/weather?lat=10&lon=10')))
    const answered = burst.filter((r) => r.status === 200).length
    assert.ok(answered >= 4 && answered <= 5, `${answered} of 10 answered`)
    const fast = burst.find((r) => r.status === 429)
    assert.equal(burst.filter((r) => r.status === 429).length, 10 - answered)
    assert.equal((await fast.json()).error.code, 'ERR_CLIENT_RATE_LIMITED')
    assert.equal(fast.headers.get('retry-after'), '1')
    assert.equal((await as('beta-t0ken', '/v1/weather?lat=10&lon=10')).status, 200)
    const metrics = await (await as('beta-t0ken', '/metrics')).text()
    assert.equal(sample(metrics, 'weather_cache_proxy_client_limited_total{client="alpha",limit="upstream"}'), 1)
    assert.equal(sample(metrics, 'weather_cache_proxy_client_limited_total{client="gamma",limit="rate"}'), 10 - answered)
    assert.equal(sample(metrics, 'weather_cache_proxy_client_limited_total{client="beta",limit="rate"}'), 0)
    assert.equal(sample(metrics, 'weather_cache_proxy_client_upstream_calls_total{client="alpha"}'), 2)
  }, ['--tokens-file', join(dir, 'tokens'), '--client-rate-limit', '4', '--client-upstream-limit', '2'])
})

test('without tokens, limits are per client address; --trust-proxy takes it from X-Forwarded-For, only from those peers', () =>
  withProxy(answer.weather, async ({ proxy }) => {
    const url = `${proxy.url}/v1/weather?lat=1&lon=1`
    const from = (localAddress, forwardedFor) => httpGet(url, { localAddress, headers: forwardedFor ? { 'x-forwarded-for': forwardedFor } : {} })
    // 127.0.0.2 is untrusted: what it says in X-Forwarded-For changes nothing.
    assert.equal((await from('127.0.0.2', '198.51.100.1')).status, 200)
    assert.equal((await from('127.0.0.2', '198.51.100.2')).status, 200)
    assert.equal((await from('127.0.0.2', '198.51.100.3')).status, 429)
    assert.equal((await from('127.0.0.3')).status, 200, 'another address is unaffected')
    // 127.0.0.1 is the trusted balancer: each forwarded client has its own allowance. The
    // rightmost untrusted entry counts: what a client writes left of it does not.
    for (const client of ['203.0.113.5', '198.51.100.9, 203.0.113.6', '203.0.113.7']) {
      assert.equal((await from('127.0.0.1', client)).status, 200, client)
      assert.equal((await from('127.0.0.1', client)).status, 200, client)
    }
    assert.equal((await from('127.0.0.1', '1.1.1.1, 203.0.113.6')).status, 429, 'still 203.0.113.6')
  }, ['--client-rate-limit', '2', '--trust-proxy', '127.0.0.1/32']))

test('--trust-proxy peers are exempt from --max-connections-per-ip; others are held to it', () =>
  withProxy(answer.weather, async ({ proxy }) => {
    const open = (localAddress) => rawClient(port(proxy), '', { localAddress })
    const balancer = [open('127.0.0.1'), open('127.0.0.1'), open('127.0.0.1')]
    const direct = [open('127.0.0.4'), open('127.0.0.4')]
    await sleep(100)
    const ask = (localAddress) => rawClient(port(proxy), 'GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n', { localAddress }).closed
    assert.match((await ask('127.0.0.1')).data, /^HTTP\/1\.1 200/)
    assert.match((await ask('127.0.0.4')).data, /ERR_TOO_MANY_CONNECTIONS_FROM_ADDRESS/)
    for (const c of [...balancer, ...direct]) c.socket.destroy()
  }, ['--max-connections-per-ip', '2', '--trust-proxy', '127.0.0.1']))

test('/readyz: ready, then 503 with the reason while every provider is rate limited; /healthz stays 200', () =>
  withProxy(answer.weather, async ({ proxy, get, upstream }) => {
    const ready = await httpGet(`${proxy.url}/readyz`, { headers: { host: 'probe.internal:8080' } })
    assert.equal(ready.status, 200, 'a probe may use any name')
    assert.deepEqual(JSON.parse(ready.body), { ready: true })
    upstream.behave(answer.rateLimited(120))
    assert.equal((await get('/v1/weather?lat=1&lon=1')).status, 503)
    const limited = await get('/readyz')
    assert.equal(limited.status, 503)
    const body = await limited.json()
    assert.equal(body.ready, false)
    assert.deepEqual(body.reasons.map((r) => [r.provider, r.code]), [['openweather', 'ERR_RATE_LIMITED']])
    assert.ok(body.reasons[0].retryAfterMs > 100_000)
    assert.ok(Number(limited.headers.get('retry-after')) > 100)
    assert.equal((await get('/healthz')).status, 200, 'liveness is not readiness')
  }))

test('/readyz: 503 while draining (--drain-delay), with requests still served, then a clean exit', async () => {
  const upstream = await startUpstream(answer.weather)
  const proxy = await startServe(['--upstream', upstream.url, '--drain-delay', '1500'], { OPEN_WEATHER_API_KEY: API_KEY })
  try {
    assert.equal((await fetch(`${proxy.url}/readyz`)).status, 200)
    proxy.child.kill('SIGTERM')
    await sleep(200)
    const draining = await fetch(`${proxy.url}/readyz`)
    assert.equal(draining.status, 503)
    assert.deepEqual((await draining.json()).reasons.map((r) => r.code), ['ERR_DRAINING'])
    assert.equal((await fetch(`${proxy.url}/v1/weather?lat=1&lon=1`)).status, 200, 'still serving while the balancer notices')
    const { code } = await proxy.exited
    assert.equal(code, 0)
  } finally {
    proxy.child.kill('SIGKILL')
    await upstream.close()
  }
})

test('listen(): tokensFile and token exclude each other; a bad tokens file, trustProxy or half a TLS pair is refused', async () => {
  const { WeatherService } = await import('../main.js')
  const dir = tempDir('listen-options')
  writeFileSync(join(dir, 'tokens'), 'alpha\n')
  const service = new WeatherService({ apiKey: API_KEY })
  try {
    await assert.rejects(service.listen({ port: 0, token: 'x', tokensFile: join(dir, 'tokens') }), { code: 'ERR_INVALID_ARG_VALUE' })
    await assert.rejects(service.listen({ port: 0, tokensFile: join(dir, 'tokens') }), { code: 'ERR_PROXY_TOKENS', message: /line 1/ })
    await assert.rejects(service.listen({ port: 0, tokensFile: join(dir, 'missing') }), { code: 'ERR_PROXY_TOKENS' })
    await assert.rejects(service.listen({ port: 0, trustProxy: ['10.0.0.0/40'] }), { code: 'ERR_INVALID_ARG_VALUE' })
    await assert.rejects(service.listen({ port: 0, trustProxy: '10.0.0.0/8' }), { code: 'ERR_INVALID_ARG_TYPE' })
    await assert.rejects(service.listen({ port: 0, tlsCert: join(dir, 'cert.pem') }), { code: 'ERR_INVALID_ARG_VALUE' })
    await assert.rejects(service.listen({ port: 0, maxConnectionsPerIp: 0 }), { code: 'ERR_OUT_OF_RANGE' })
    // reload() without files to reread resolves, saying so.
    const proxy = await service.listen({ port: 0 })
    assert.deepEqual(await proxy.reload(), { certificate: false, accessLog: false })
    await proxy.close(100)
  } finally {
    service.close()
  }
})

// Found by the second review, each by running it against a serve process.

test('review: a load balancer\'s HTTP/1.0 health check without Host (HAProxy\'s option httpchk) gets its probe answered; other HTTP/1.0 requests still need Host', () =>
  withProxy(answer.weather, async ({ proxy, upstream }) => {
    const { rawRequest } = await import('./serve-process.mjs')
    for (const path of ['/healthz', '/readyz']) {
      const probe = await rawRequest(port(proxy), `GET ${path} HTTP/1.0\r\n\r\n`)
      assert.equal(probe.status, 200, `${path}: ${probe.raw}`)
    }
    const weather = await rawRequest(port(proxy), 'GET /v1/weather?lat=1&lon=1 HTTP/1.0\r\n\r\n')
    assert.equal(weather.status, 400)
    assert.equal(JSON.parse(weather.body).error.code, 'ERR_MISSING_HOST')
    assert.equal((await rawRequest(port(proxy), 'GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n')).status, 400, 'HTTP/1.1 needs Host (RFC 9112)')
    assert.equal(upstream.count, 0)
  }))

test('review: two Host lines are a 400 (RFC 9112 §3.2), whichever comes first; so is an HTTP/2 Host that contradicts :authority', { skip: noTools }, async () => {
  const { rawRequest } = await import('./serve-process.mjs')
  await withProxy(answer.weather, async ({ proxy, upstream }) => {
    for (const hosts of [['localhost', 'evil.example'], ['evil.example', 'localhost'], ['localhost', 'localhost']]) {
      const lines = hosts.map((h) => `Host: ${h}\r\n`).join('')
      const answered = await rawRequest(port(proxy), `GET /v1/status HTTP/1.1\r\n${lines}Connection: close\r\n\r\n`)
      assert.equal(answered.status, 400, hosts.join(' then '))
      assert.equal(JSON.parse(answered.body).error.code, 'ERR_AMBIGUOUS_HOST')
    }
    const weather = await rawRequest(port(proxy), 'GET /v1/weather?lat=1&lon=1 HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\nConnection: close\r\n\r\n')
    assert.equal(weather.status, 400)
    assert.equal(upstream.count, 0)
    // Junk after an IPv6 literal is no address.
    assert.equal((await rawRequest(port(proxy), 'GET /v1/status HTTP/1.1\r\nHost: [::1]evil\r\nConnection: close\r\n\r\n')).status, 421)
  })
  const dir = tempDir('h2-host')
  const certs = makeCertificates(dir, 'h2host')
  await withProxy(answer.weather, async ({ proxy }) => {
    const session = http2.connect(proxy.url, { ca: readFileSync(certs.root) })
    const ask = (headers) =>
      new Promise((resolve, reject) => {
        const stream = session.request({ ':path': '/v1/status', ...headers })
        let body = ''
        stream.on('response', (h) => stream.on('data', (d) => (body += d)).on('end', () => resolve({ status: h[':status'], body })))
        stream.on('error', reject)
      })
    try {
      assert.equal((await ask({ ':authority': 'localhost', host: 'localhost' })).status, 200)
      const contradicted = await ask({ ':authority': 'localhost', host: 'evil.example' })
      assert.equal(contradicted.status, 400)
      assert.equal(JSON.parse(contradicted.body).error.code, 'ERR_AMBIGUOUS_HOST')
    } finally {
      session.close()
    }
  }, ['--tls-cert', certs.chain, '--tls-key', certs.key])
})

test('review: requests another site makes a browser send are refused (403): no budget spent through 127.0.0.1, no login CSRF; the proxy\'s own pages and links to it still work', async () => {
  const { rawRequest } = await import('./serve-process.mjs')
  // What Chromium sends for an <img> and a fetch() on another site's page, for that page's form
  // posting to /login, for the status page's own fetch and form, and for a link followed.
  const image = 'Sec-Fetch-Site: cross-site\r\nSec-Fetch-Mode: no-cors\r\nSec-Fetch-Dest: image\r\n'
  const sameSite = 'Sec-Fetch-Site: same-site\r\nSec-Fetch-Mode: no-cors\r\nSec-Fetch-Dest: empty\r\n'
  const foreignForm = 'Sec-Fetch-Site: cross-site\r\nSec-Fetch-Mode: navigate\r\nSec-Fetch-Dest: document\r\nOrigin: http://evil.example\r\n'
  const ownForm = 'Sec-Fetch-Site: same-origin\r\nSec-Fetch-Mode: navigate\r\nSec-Fetch-Dest: document\r\nOrigin: null\r\n'
  const link = 'Sec-Fetch-Site: cross-site\r\nSec-Fetch-Mode: navigate\r\nSec-Fetch-Dest: document\r\n'
  const get = (proxy, path, headers) => rawRequest(port(proxy), `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port(proxy)}\r\n${headers}Connection: close\r\n\r\n`)
  const login = (proxy, token, headers) => {
    const body = `token=${token}`
    return rawRequest(port(proxy), `POST /login HTTP/1.1\r\nHost: 127.0.0.1:${port(proxy)}\r\n${headers}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`)
  }
  // No token, on loopback (the default): a page cannot spend the budget through the address.
  await withProxy(answer.weather, async ({ proxy, upstream }) => {
    for (const headers of [image, sameSite]) {
      const refused = await get(proxy, '/v1/weather?lat=10&lon=20', headers)
      assert.equal(refused.status, 403)
      assert.equal(JSON.parse(refused.body).error.code, 'ERR_CROSS_SITE')
      assert.equal((await get(proxy, '/v1/status', headers)).status, 403)
    }
    assert.equal(upstream.count, 0, 'nothing spent')
    assert.equal((await get(proxy, '/v1/weather?lat=10&lon=20', '')).status, 200, 'a drone sends no Fetch Metadata')
    assert.equal((await get(proxy, '/healthz', image)).status, 200, 'probes stay open')
    const metrics = await (await fetch(`${proxy.url}/metrics`)).text()
    assert.equal(sample(metrics, 'weather_cache_proxy_cross_site_requests_total'), 4)
  })
  // With a token: another site's form cannot log the operator's browser in with a token it chose.
  await withProxy(answer.weather, async ({ proxy }) => {
    const forged = await login(proxy, 'csrf-t0ken', foreignForm)
    assert.equal(forged.status, 403)
    assert.equal(forged.headers['set-cookie'], undefined)
    assert.equal((await login(proxy, 'csrf-t0ken', 'Origin: http://evil.example\r\n')).status, 403, 'an older browser: its Origin')
    const own = await login(proxy, 'csrf-t0ken', ownForm)
    assert.equal(own.status, 303)
    assert.match(own.headers['set-cookie'], /^weather_cache_status=/)
    assert.equal((await login(proxy, 'csrf-t0ken', `Origin: http://127.0.0.1:${port(proxy)}\r\n`)).status, 303)
    assert.equal((await get(proxy, '/', link)).status, 401, 'a link to the page opens its login form')
  }, ['--token', 'csrf-t0ken'])
})

test('review: under TLS the handshake and the first head share the header timeout; a slow handshake does not buy a second one', { skip: noTools }, async () => {
  const dir = tempDir('slow-handshake')
  const certs = makeCertificates(dir, 'slow')
  await withProxy(answer.weather, async ({ proxy }) => {
    // A client whose first TLS flight (the ClientHello) leaves 1.2 s late, then sends half a head.
    const raw = net.connect({ port: port(proxy), host: '127.0.0.1' })
    const started = Date.now()
    let writes = 0
    const delayed = new Duplex({
      write(chunk, _encoding, done) {
        setTimeout(() => raw.write(chunk, done), writes++ === 0 ? 1_200 : 0)
      },
      read() {},
    })
    raw.on('data', (d) => delayed.push(d))
    raw.on('error', () => {})
    const closed = new Promise((resolve) => raw.on('close', () => resolve(Date.now() - started)))
    const client = tls.connect({ socket: delayed, ca: readFileSync(certs.root), servername: 'localhost', ALPNProtocols: ['http/1.1'] })
    client.on('error', () => {})
    let handshakeMs
    client.on('secureConnect', () => {
      handshakeMs = Date.now() - started
      client.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\n')
    })
    const afterMs = await closed
    assert.ok(handshakeMs >= 1_100, `the handshake took ${handshakeMs} ms`)
    // 2,000 ms from the accept (some slack for a busy machine); a second timeout would be ~3,200.
    assert.ok(afterMs < 2_700, `cut off after ${afterMs} ms (--header-timeout 2000)`)
  }, ['--tls-cert', certs.chain, '--tls-key', certs.key, '--header-timeout', '2000'])
})

test('review: an --allowed-host with a port, scheme or path exits 2 (it could never match: every request would get 421)', async () => {
  for (const value of ['weather.example:8443', 'https://weather.example', 'weather.example/']) {
    // One that starts serving instead is stopped after 5 s (and fails the test).
    const { code, stderr } = await runServeFor(5_000, ['--port', '0', '--allowed-host', value], { OPEN_WEATHER_API_KEY: API_KEY })
    assert.equal(code, 2, `${value}: ${stderr}`)
    assert.match(stderr, /is not a host name/)
  }
  const { WeatherService } = await import('../main.js')
  const service = new WeatherService({ apiKey: API_KEY })
  try {
    await assert.rejects(service.listen({ port: 0, allowedHosts: ['weather.example:443'] }), { code: 'ERR_INVALID_ARG_VALUE', message: /options\.allowedHosts/ })
    const proxy = await service.listen({ port: 0, allowedHosts: ['Weather.Example.', '10.0.0.5'] })
    const answered = await httpGet(`${proxy.url}/healthz`, { headers: { host: 'weather.example' } })
    assert.equal(answered.status, 200)
    await proxy.close(100)
  } finally {
    service.close()
  }
})
