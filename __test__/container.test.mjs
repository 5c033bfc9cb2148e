// The container image as an operator gets it: built from the Containerfile with Debian's podman
// around the static binary in dist/ (`npm run build:cross -- --server-only
// x86_64-unknown-linux-musl`; .ci/run builds it before `npm test`), then run the way the README
// says: /healthz and a weather answer from a loopback upstream (--network host), as the
// non-root user, and exit 0 on `podman stop` (SIGTERM).
//
// Then compose.yaml's set-up, two proxies on one Redis, with Debian's redis-server on loopback:
// what one proxy fetched, the other answers from Redis.
//
// Running containers on this kind of machine needs runc (crun fails on cgroup v1 and on
// setrlimit), cgroupfs, and a containers.conf without default ulimits.
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { fileURLToPath } from 'node:url'

import { redisServerInstalled, startRedis } from '../lib/local-redis.mjs'
import { answer, API_KEY, startUpstream } from '../lib/testing.mjs'
import { buildImage, serverBinary, VERSION } from '../scripts/build-image.mjs'
import { smokeServer } from '../scripts/server-smoke.mjs'
import { needs } from './needs.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))
const binary = serverBinary('x86_64-unknown-linux-musl')
const tag = `localhost/weather-cache-server:test-${process.pid}`
const RUNTIME = ['--runtime', 'runc', '--cgroup-manager=cgroupfs']
const confDir = mkdtempSync(join(tmpdir(), 'weather-cache-podman-'))
const env = { ...process.env, CONTAINERS_CONF: join(confDir, 'containers.conf') }
writeFileSync(env.CONTAINERS_CONF, '[containers]\ndefault_ulimits = []\n')

const podman = (args, options = {}) => spawnSync('podman', [...RUNTIME, ...args], { encoding: 'utf8', env, ...options })
const has = (command) => spawnSync(command, ['--version'], { encoding: 'utf8' }).status === 0

/** The newest file the binary is built from (manifests, crates' src/): a binary older than it is stale. */
function newestSource() {
  const newestIn = (dir) =>
    readdirSync(dir, { withFileTypes: true }).reduce((newest, entry) => {
      const path = join(dir, entry.name)
      return Math.max(newest, entry.isDirectory() ? newestIn(path) : statSync(path).mtimeMs)
    }, 0)
  const crates = readdirSync(join(root, 'crates')).map((c) => join(root, 'crates', c))
  const manifests = [join(root, 'Cargo.lock'), join(root, 'Cargo.toml'), ...crates.map((c) => join(c, 'Cargo.toml'))]
  return Math.max(...manifests.map((f) => statSync(f).mtimeMs), ...crates.map((c) => newestIn(join(c, 'src'))))
}

const ready = () => {
  if (!has('podman')) return 'podman is not installed (apt-get install podman buildah runc)'
  if (!existsSync('/usr/sbin/runc') && !has('runc')) return 'runc is not installed'
  if (!existsSync(binary)) return `${binary} is missing: run \`npm run build:cross -- --server-only x86_64-unknown-linux-musl\``
  if (statSync(binary).mtimeMs < newestSource()) return `${binary} is older than crates/: rebuild it with \`npm run build:cross -- --server-only x86_64-unknown-linux-musl\``
  return null
}
const missing = ready()
let image = null

before(() => {
  if (missing) return
  image = buildImage({ tags: [tag] })
})

after(() => {
  if (image) podman(['rmi', '--force', tag])
  rmSync(confDir, { recursive: true, force: true })
})

test('the image: FROM scratch, holding only the static binary, CA certificates and a non-root user', (t) => {
  if (!needs(t, !missing, missing)) return
  const config = JSON.parse(podman(['image', 'inspect', tag]).stdout)[0].Config
  assert.equal(config.User, '65532:65532')
  assert.deepEqual(config.Entrypoint, ['/usr/local/bin/weather-cache-server'])
  assert.equal(config.StopSignal, 'SIGTERM')
  assert.ok(config.Env.includes('WEATHER_CACHE_HOST=0.0.0.0'), config.Env.join(' '))
  assert.equal(config.Labels['org.opencontainers.image.version'], VERSION)
  // Every file in it (podman export: the container's filesystem as a tar).
  const name = `weather-cache-files-${process.pid}`
  assert.equal(podman(['create', '--name', name, tag]).status, 0)
  try {
    const listing = spawnSync('sh', ['-c', `podman ${RUNTIME.join(' ')} export ${name} | tar -t`], { encoding: 'utf8', env })
    assert.equal(listing.status, 0, listing.stderr)
    const files = listing.stdout.split('\n').filter((f) => f && !f.endsWith('/'))
    assert.deepEqual(files.sort(), ['etc/group', 'etc/passwd', 'etc/ssl/certs/ca-certificates.crt', 'usr/local/bin/weather-cache-server'])
    const passwd = spawnSync('sh', ['-c', `podman ${RUNTIME.join(' ')} export ${name} | tar -xO etc/passwd`], { encoding: 'utf8', env })
    assert.match(passwd.stdout, /^weather-cache:x:65532:65532:/m)
    const ca = spawnSync('sh', ['-c', `podman ${RUNTIME.join(' ')} export ${name} | tar -xO etc/ssl/certs/ca-certificates.crt | grep -c 'BEGIN CERTIFICATE'`], { encoding: 'utf8', env })
    assert.ok(Number(ca.stdout) > 100, `${ca.stdout} certificates in the bundle`)
  } finally {
    podman(['rm', '--force', name])
  }
  t.diagnostic(`image ${(image.bytes / 1024 / 1024).toFixed(2)} MiB, binary ${(statSync(binary).size / 1024 / 1024).toFixed(2)} MiB, built in ${image.seconds.toFixed(1)} s`)
})

test('the container serves /healthz and a weather answer from a loopback upstream as user 65532, and exits 0 on podman stop', async (t) => {
  if (!needs(t, !missing, missing)) return
  const name = `weather-cache-smoke-${process.pid}`
  let uid = null
  try {
    const seen = await smokeServer(({ upstream, apiKeyFile }) => ({
      command: 'podman',
      // --host 127.0.0.1: with the host's network, the image's 0.0.0.0 would open the port to
      // the machine's other interfaces; a flag overrides WEATHER_CACHE_HOST.
      args: [...RUNTIME, 'run', '--rm', '--name', name, '--network', 'host', '-v', `${apiKeyFile}:/run/secrets/openweather-api-key:ro`, tag,
        '--host', '127.0.0.1', '--port', '0', '--upstream', upstream.url, '--api-key-file', '/run/secrets/openweather-api-key'],
      env,
      stop: () => {
        const pid = podman(['inspect', '--format', '{{.State.Pid}}', name]).stdout.trim()
        uid = (/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8')) || [])[1]
        // podman stop sends the image's StopSignal (SIGTERM), and SIGKILL after --time.
        const stopped = podman(['stop', '--time', '20', name])
        assert.equal(stopped.status, 0, stopped.stderr)
      },
    }))
    assert.equal(uid, '65532', 'the proxy runs as the image user')
    assert.deepEqual([seen.first.condition, seen.first.tempC, seen.first.source, seen.second.source, seen.upstreamCalls], ['Rain', 7, 'network', 'cache', 1])
    assert.deepEqual(seen.exit, { code: 0, signal: null })
    assert.match(seen.stdout, /SIGTERM/)
    t.diagnostic(`stopped in ${seen.stopMs} ms`)
  } finally {
    podman(['rm', '--force', '--ignore', name])
  }
})

/** `podman run` of the image, attached; resolves once the proxy in it says where it listens. */
function runContainer(name, args) {
  const child = spawn('podman', [...RUNTIME, 'run', '--rm', '--name', name, '--network', 'host', ...args], { env })
  let output = ''
  child.stdout.on('data', (d) => (output += d))
  child.stderr.on('data', (d) => (output += d))
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} is not listening after 60 s:\n${output}`)), 60_000)
    child.stdout.on('data', () => {
      const match = /listening on (http:\/\/\S+)/.exec(output)
      if (match) {
        clearTimeout(timer)
        resolve({ url: match[1], child })
      }
    })
    child.on('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`${name} exited (${code}) before listening:\n${output}`))
    })
  })
}

test("two containers on one Redis (compose.yaml's set-up): what A fetched, B answers from Redis", async (t) => {
  if (!needs(t, !missing, missing)) return
  if (!needs(t, redisServerInstalled(), 'redis-server is not installed')) return
  const redis = await startRedis()
  const upstream = await startUpstream(answer.fixed(7.2, 'Rain'))
  const dir = mkdtempSync(join(tmpdir(), 'weather-cache-pair-'))
  writeFileSync(join(dir, 'key'), `${API_KEY}\n`, { mode: 0o644 })
  const names = [`weather-cache-a-${process.pid}`, `weather-cache-b-${process.pid}`]
  try {
    const [a, b] = await Promise.all(
      names.map((name) =>
        runContainer(name, ['-v', `${join(dir, 'key')}:/run/secrets/openweather-api-key:ro`, tag, '--host', '127.0.0.1', '--port', '0',
          '--redis', redis.url, '--upstream', upstream.url, '--api-key-file', '/run/secrets/openweather-api-key']),
      ),
    )
    const ask = async (proxy) => (await fetch(`${proxy.url}/v1/weather?lat=47.3769&lon=8.5417`)).json()
    assert.equal((await ask(a)).source, 'network')
    // A writes to Redis just after it answers: wait for the entry there.
    const started = Date.now()
    while (!(await redis.command('KEYS', '*:v2:payloads')).includes('{')) {
      assert.ok(Date.now() - started < 10_000, 'no entry in Redis 10 s after A answered')
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    const fromB = await ask(b)
    assert.deepEqual([fromB.condition, fromB.tempC, fromB.source, upstream.count], ['Rain', 7, 'cache', 1])
  } finally {
    for (const name of names) podman(['rm', '--force', '--ignore', name])
    await upstream.close()
    await redis.stop()
    rmSync(dir, { recursive: true, force: true })
  }
})
