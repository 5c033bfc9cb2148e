// `demo --instances N --redis URL` leaves the user's Redis as it found it: it writes under a key
// prefix of its own and deletes every key under it at the end, when it succeeds and when it is
// stopped by SIGINT; on one server (with a password), the primary of a Sentinel, and a Cluster.
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

import { redisCliInstalled, redisServerInstalled, startRedis, startRedisCluster } from '../lib/local-redis.mjs'
import { parseRedisUrl } from '../lib/redis-sweep.mjs'
import { needs } from './needs.mjs'

const bin = fileURLToPath(new URL('../bin/weather-cache.mjs', import.meta.url))

function demo(args) {
  const child = spawn(process.execPath, [bin, 'demo', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => (stdout += d))
  child.stderr.on('data', (d) => (stderr += d))
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr })))
  return { child, exited }
}

/** The key names a server holds (the tests' servers hold a few). */
async function keys(redis) {
  const reply = await redis.command('KEYS', '*')
  return [...reply.matchAll(/\$\d+\r\n([^\r]*)\r\n/g)].map((m) => m[1]).sort()
}

/** The user's own keys, among them some of the tier's default namespace: none may go. */
const USERS_KEYS = ['session:42', '{weather-cache}:budget:openweather:minute', '{weather-cache:48,2}:v2:entries']

async function seed(redis) {
  for (const key of USERS_KEYS) await redis.command('SET', key, 'mine')
}

test('demo --instances --redis deletes every key it wrote, and only those (a server with a password)', async (t) => {
  if (!needs(t, redisServerInstalled(), 'redis-server is not installed (apt-get install redis-server)')) return
  const redis = await startRedis({ password: 's3cret-pw' })
  try {
    await seed(redis)
    const { code, stdout, stderr } = await demo(['--instances', '3', '--drones', '300', '--minutes', '10', '--redis', redis.url, '--json']).exited
    assert.equal(code, 0, stderr)
    const r = JSON.parse(stdout)
    assert.ok(r.rows[2].tierHits > 0, 'the instances shared entries through this Redis')
    assert.match(r.cleanup.keyPrefix, /^weather-cache-demo-[0-9a-z]+-[0-9a-f]{8}$/)
    assert.ok(r.cleanup.removed >= 5, `${r.cleanup.removed} keys deleted: entries, payloads, expiries, owners and budgets at least`)
    assert.deepEqual(await keys(redis), [...USERS_KEYS].sort())
    assert.ok(!stdout.includes('s3cret-pw') && !stderr.includes('s3cret-pw'))
  } finally {
    await redis.stop()
  }
})

test('the summary says what was deleted', async (t) => {
  if (!needs(t, redisServerInstalled(), 'redis-server is not installed (apt-get install redis-server)')) return
  const redis = await startRedis()
  try {
    const { code, stdout, stderr } = await demo(['--instances', '2', '--drones', '100', '--minutes', '5', '--redis', redis.url]).exited
    assert.equal(code, 0, stderr)
    assert.match(stdout, /Your Redis is as it was: the \d+ keys written under \{weather-cache-demo-[0-9a-z]+-[0-9a-f]{8}\} were deleted\./)
    assert.deepEqual(await keys(redis), [])
  } finally {
    await redis.stop()
  }
})

test('SIGINT in the middle of the shared-tier run: the keys are deleted, then the demo ends by the signal', async (t) => {
  if (!needs(t, redisServerInstalled(), 'redis-server is not installed (apt-get install redis-server)')) return
  const redis = await startRedis()
  try {
    await seed(redis)
    // Each set-up flies 7,200 steps (a few seconds); the shared tier's is the third.
    const { child, exited } = demo(['--instances', '2', '--drones', '20', '--minutes', '600', '--latency-ms', '0', '--redis', redis.url, '--json'])
    try {
      const deadline = Date.now() + 60_000
      while ((await keys(redis)).length <= USERS_KEYS.length) {
        assert.ok(Date.now() < deadline, 'the demo never wrote to Redis')
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
      child.kill('SIGINT')
      const { signal, stdout, stderr } = await exited
      assert.equal(signal, 'SIGINT', stderr)
      assert.equal(stdout, '', 'no summary for a run that was stopped')
      assert.match(stderr, /weather-cache demo: SIGINT: deleted the \d+ keys it wrote to Redis/)
      assert.deepEqual(await keys(redis), [...USERS_KEYS].sort())
    } finally {
      child.kill('SIGKILL')
    }
  } finally {
    await redis.stop()
  }
})

test('a Redis Cluster: every primary is swept', async (t) => {
  if (!needs(t, redisServerInstalled() && redisCliInstalled(), 'redis-server or redis-cli is not installed (apt-get install redis-server redis-tools)')) return
  const cluster = await startRedisCluster()
  try {
    const { code, stdout, stderr } = await demo(['--instances', '2', '--drones', '2000', '--minutes', '5', '--redis', cluster.url, '--json']).exited
    assert.equal(code, 0, stderr)
    const r = JSON.parse(stdout)
    assert.ok(r.rows[2].tierHits > 0)
    assert.ok(r.cleanup.removed > 0, JSON.stringify(r.cleanup))
    assert.deepEqual(await cluster.keyCounts(), [0, 0, 0])
  } finally {
    await cluster.stop()
  }
})

function sentinelInstalled() {
  return spawnSync('redis-sentinel', ['--version'], { stdio: 'ignore' }).status === 0
}

async function freePort() {
  const server = net.createServer()
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address()
  await new Promise((resolve) => server.close(resolve))
  return port
}

test('a Sentinel URL: the primary it names is swept', async (t) => {
  if (!needs(t, redisServerInstalled() && sentinelInstalled(), 'redis-server or redis-sentinel is not installed (apt-get install redis-server redis-sentinel)')) return
  const primary = await startRedis()
  const dir = mkdtempSync(join(tmpdir(), 'weather-cache-sentinel-'))
  const port = await freePort()
  writeFileSync(join(dir, 'sentinel.conf'), `port ${port}\nbind 127.0.0.1\nsentinel monitor demo-primary 127.0.0.1 ${primary.port} 1\n`)
  const sentinel = spawn('redis-sentinel', [join(dir, 'sentinel.conf')], { stdio: 'ignore', cwd: dir })
  try {
    const { redisCommand } = await import('../lib/local-redis.mjs')
    const deadline = Date.now() + 10_000
    for (;;) {
      const reply = await redisCommand(port, ['SENTINEL', 'get-master-addr-by-name', 'demo-primary']).catch(() => '')
      if (reply.includes(String(primary.port))) break
      assert.ok(Date.now() < deadline, 'the sentinel never knew its primary')
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    await seed(primary)
    const url = `redis+sentinel://127.0.0.1:${port}/demo-primary`
    const { code, stdout, stderr } = await demo(['--instances', '2', '--drones', '200', '--minutes', '5', '--redis', url, '--json']).exited
    assert.equal(code, 0, stderr)
    const r = JSON.parse(stdout)
    assert.ok(r.rows[2].tierHits > 0)
    assert.ok(r.cleanup.removed > 0, JSON.stringify(r.cleanup))
    assert.deepEqual(await keys(primary), [...USERS_KEYS].sort())
  } finally {
    const exited = new Promise((resolve) => sentinel.once('exit', resolve))
    sentinel.kill('SIGKILL')
    await exited
    rmSync(dir, { recursive: true, force: true })
    await primary.stop()
  }
})

test('the sweep reads the tier URL forms', () => {
  assert.deepEqual(parseRedisUrl('redis://:p%40ss@127.0.0.1:6380/3'), {
    kind: 'node', tls: false, nodes: [{ host: '127.0.0.1', port: 6380 }], username: undefined, password: 'p@ss', db: 3,
  })
  assert.deepEqual(parseRedisUrl('rediss://user:pw@[::1]').nodes, [{ host: '::1', port: 6379 }])
  assert.deepEqual(parseRedisUrl('rediss://user:pw@[::1]').tls, true)
  const sentinel = parseRedisUrl('redis+sentinel://u:p@10.0.0.1:26379,10.0.0.2/main/2?sentinelPassword=sp')
  assert.deepEqual([sentinel.kind, sentinel.nodes.length, sentinel.service, sentinel.db, sentinel.password, sentinel.sentinelPassword], ['sentinel', 2, 'main', 2, 'p', 'sp'])
  assert.deepEqual(parseRedisUrl('redis+cluster://a:7000,b:7001').nodes, [{ host: 'a', port: 7000 }, { host: 'b', port: 7001 }])
  assert.throws(() => parseRedisUrl('http://x'), /not a redis:\/\//)
})
