// A throwaway redis-server on a free loopback port (no persistence, a temp dir, stopped at the
// end), for the shared-tier tests, `npm run demo -- --instances N` and the benchmarks; and a
// throwaway three-master Redis Cluster. They need Debian's `redis-server` binary (and
// `redis-cli`, from redis-tools, for the cluster); .ci/run installs them.
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'

/** Whether a `redis-server` binary can run here. */
export function redisServerInstalled() {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0
}

/** Whether `redis-cli` (Debian's redis-tools) can run here. */
export function redisCliInstalled() {
  return spawnSync('redis-cli', ['--version'], { stdio: 'ignore' }).status === 0
}

async function freePort() {
  const server = net.createServer()
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address()
  await new Promise((resolve) => server.close(resolve))
  return port
}

function reachable(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.end(() => resolve(true)))
    socket.on('error', () => resolve(false))
  })
}

/** Sends one command (RESP) and resolves with the raw reply text. */
export function redisCommand(port, args, password) {
  const encode = (parts) => `*${parts.length}\r\n${parts.map((p) => `$${Buffer.byteLength(String(p))}\r\n${p}\r\n`).join('')}`
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      if (password) socket.write(encode(['AUTH', password]))
      socket.write(encode(args))
    })
    let data = ''
    socket.on('data', (d) => {
      data += d
      const replies = password ? 2 : 1
      if (data.split('\r\n').length > replies) {
        socket.end()
        resolve(password ? data.slice(data.indexOf('\r\n') + 2) : data)
      }
    })
    socket.on('error', reject)
  })
}

export async function startRedis({ password, args: extra = [] } = {}) {
  const port = await freePort()
  const dir = mkdtempSync(path.join(os.tmpdir(), 'weather-cache-redis-'))
  let child = null
  const redis = {
    port,
    url: password ? `redis://:${password}@127.0.0.1:${port}/0` : `redis://127.0.0.1:${port}/0`,
    /** Starts it, unless it runs already. */
    async start() {
      if (child) return
      const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir]
      if (password) args.push('--requirepass', password)
      args.push(...extra)
      child = spawn('redis-server', args, { stdio: 'ignore', cwd: dir })
      const started = Date.now()
      while (!(await reachable(port))) {
        if (Date.now() - started > 10_000) throw new Error('redis-server did not start')
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
    },
    /** kill -9: no goodbye to the clients. */
    async kill() {
      if (!child) return
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGKILL')
      await exited
      child = null
    },
    command: (...args) => redisCommand(port, args, password),
    async stop() {
      await redis.kill()
      rmSync(dir, { recursive: true, force: true })
    },
  }
  await redis.start()
  return redis
}

/**
 * Three masters (no replicas) joined by `redis-cli --cluster create`; `url` is the tier's
 * `redis+cluster://` URL with two of them as seeds.
 */
export async function startRedisCluster() {
  const nodes = []
  try {
    for (let i = 0; i < 3; i++) {
      nodes.push(await startRedis({ args: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '2000'] }))
    }
    const created = spawnSync('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-yes'], { stdio: 'ignore' })
    if (created.status !== 0) throw new Error('redis-cli --cluster create failed')
    for (const node of nodes) {
      const started = Date.now()
      while (!(await node.command('CLUSTER', 'INFO')).includes('cluster_state:ok')) {
        if (Date.now() - started > 20_000) throw new Error('the cluster never became ok')
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
    }
  } catch (error) {
    await Promise.all(nodes.map((n) => n.stop()))
    throw error
  }
  return {
    nodes,
    url: `redis+cluster://${nodes.slice(0, 2).map((n) => `127.0.0.1:${n.port}`).join(',')}`,
    /** Keys on each master. */
    async keyCounts() {
      return Promise.all(nodes.map(async (n) => Number(/^:(\d+)/.exec(await n.command('DBSIZE'))[1])))
    },
    async stop() {
      await Promise.all(nodes.map((n) => n.stop()))
    },
  }
}
