// Deletes every key of one shared-tier namespace (`redis: { keyPrefix }`) from a Redis, for
// `demo --instances N --redis URL`: the demo writes under a prefix of its own and takes back
// what it wrote, so that a user's Redis is left as it was found.
//
// The tier's keys (src/tier/keys.rs) all start with the prefix inside a hash tag: `{prefix}:…`
// (budget counters, cooldowns, failing areas) and `{prefix:<tile>}:v2:…` (each tile's entries,
// payloads, expiries, leases, owners). So `SCAN MATCH {prefix}:*` and `{prefix:*` find them all,
// and nothing of another namespace. It speaks RESP itself (no client library in this package),
// to the URL forms the tier takes: one server (`redis://`, `rediss://`), the primary a Sentinel
// names, every primary of a Cluster.
import net from 'node:net'
import tls from 'node:tls'

const TIMEOUT_MS = 5000

class RedisError extends Error {}

/** One connection; commands are pipelined and answered in order. RESP2 replies only. */
class Connection {
  #socket
  #buffer = Buffer.alloc(0)
  #waiting = []
  #failed = null

  static open({ host, port, tls: useTls }) {
    return new Promise((resolve, reject) => {
      const options = { host, port, timeout: TIMEOUT_MS }
      const socket = useTls ? tls.connect({ ...options, servername: net.isIP(host) ? undefined : host }) : net.connect(options)
      const fail = (error) => {
        socket.destroy()
        reject(error)
      }
      socket.once('error', fail)
      socket.once('timeout', () => fail(new Error(`no answer from ${host}:${port} within ${TIMEOUT_MS} ms`)))
      socket.once(useTls ? 'secureConnect' : 'connect', () => {
        socket.off('error', fail)
        resolve(new Connection(socket))
      })
    })
  }

  constructor(socket) {
    this.#socket = socket
    socket.on('data', (chunk) => this.#receive(chunk))
    const broken = (error) => this.#fail(error ?? new Error('connection closed'))
    socket.on('error', broken)
    socket.on('close', () => broken())
    socket.on('timeout', () => broken(new Error(`no answer within ${TIMEOUT_MS} ms`)))
  }

  command(...args) {
    if (this.#failed) return Promise.reject(this.#failed)
    const parts = args.map((a) => Buffer.from(String(a)))
    const head = `*${parts.length}\r\n`
    this.#socket.write(Buffer.concat([Buffer.from(head), ...parts.flatMap((p) => [Buffer.from(`$${p.length}\r\n`), p, Buffer.from('\r\n')])]))
    return new Promise((resolve, reject) => this.#waiting.push({ resolve, reject }))
  }

  close() {
    this.#socket.end()
    this.#socket.destroy()
  }

  #fail(error) {
    this.#failed ??= error
    for (const { reject } of this.#waiting.splice(0)) reject(error)
  }

  #receive(chunk) {
    this.#buffer = Buffer.concat([this.#buffer, chunk])
    for (;;) {
      const parsed = parse(this.#buffer, 0)
      if (parsed === undefined) return
      this.#buffer = this.#buffer.subarray(parsed.end)
      const next = this.#waiting.shift()
      if (!next) continue
      if (parsed.value instanceof RedisError) next.reject(parsed.value)
      else next.resolve(parsed.value)
    }
  }
}

/** One RESP2 reply at `at`: `{ value, end }`, or undefined when it has not all arrived. */
function parse(buffer, at) {
  const lineEnd = buffer.indexOf('\r\n', at)
  if (lineEnd < 0) return undefined
  const type = String.fromCharCode(buffer[at])
  const line = buffer.toString('utf8', at + 1, lineEnd)
  const next = lineEnd + 2
  if (type === '+') return { value: line, end: next }
  if (type === '-') return { value: new RedisError(line), end: next }
  if (type === ':') return { value: Number(line), end: next }
  if (type === '$') {
    const length = Number(line)
    if (length < 0) return { value: null, end: next }
    if (buffer.length < next + length + 2) return undefined
    return { value: buffer.toString('utf8', next, next + length), end: next + length + 2 }
  }
  if (type === '*') {
    const count = Number(line)
    if (count < 0) return { value: null, end: next }
    const items = []
    let end = next
    for (let i = 0; i < count; i++) {
      const item = parse(buffer, end)
      if (item === undefined) return undefined
      items.push(item.value)
      end = item.end
    }
    return { value: items, end }
  }
  throw new Error(`unexpected reply from Redis (type ${JSON.stringify(type)})`)
}

function hostPort(text, scheme) {
  const match = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(text)
  if (!match) throw new Error(`a ${scheme} URL names no host`)
  return { host: match[1].replace(/^\[|\]$/g, ''), port: Number(match[2] ?? 6379) }
}

/** The parts of a tier URL (the forms of src/tier/address.rs) that a sweep needs. */
export function parseRedisUrl(url) {
  const match = /^([a-z+]+):\/\/(?:([^@/]*)@)?([^/?]*)([^?]*)(?:\?(.*))?$/i.exec(url.trim())
  if (!match) throw new Error('not a redis://, rediss://, redis+sentinel:// or redis+cluster:// URL')
  const [, rawScheme, userinfo, hosts, path, query] = match
  const scheme = rawScheme.toLowerCase()
  const kind = { redis: 'node', rediss: 'node', 'redis+sentinel': 'sentinel', 'rediss+sentinel': 'sentinel', 'redis+cluster': 'cluster', 'rediss+cluster': 'cluster' }[scheme]
  if (!kind) throw new Error('not a redis://, rediss://, redis+sentinel:// or redis+cluster:// URL')
  let username
  let password
  if (userinfo !== undefined) {
    const colon = userinfo.indexOf(':')
    username = decodeURIComponent(colon < 0 ? userinfo : userinfo.slice(0, colon)) || undefined
    password = colon < 0 ? undefined : decodeURIComponent(userinfo.slice(colon + 1))
  }
  const segments = path.split('/').filter(Boolean)
  const params = new URLSearchParams(query ?? '')
  const target = {
    kind,
    tls: scheme.startsWith('rediss'),
    nodes: hosts.split(',').map((h) => hostPort(h, scheme)),
    username,
    password,
    db: 0,
  }
  if (kind === 'sentinel') {
    target.service = segments[0]
    target.db = Number(segments[1] ?? 0)
    target.sentinelUsername = params.get('sentinelUsername') ?? undefined
    target.sentinelPassword = params.get('sentinelPassword') ?? undefined
  } else if (kind === 'node') {
    target.db = Number(segments[0] ?? 0)
  }
  return target
}

async function login(node, { tls: useTls, username, password, db = 0 }) {
  const connection = await Connection.open({ ...node, tls: useTls })
  try {
    if (password !== undefined) await (username ? connection.command('AUTH', username, password) : connection.command('AUTH', password))
    if (db) await connection.command('SELECT', db)
    return connection
  } catch (error) {
    connection.close()
    throw error
  }
}

/** Where the sentinels say the primary of `service` is. */
async function sentinelPrimary(target) {
  let lastError
  for (const node of target.nodes) {
    let connection
    try {
      connection = await login(node, { tls: target.tls, username: target.sentinelUsername, password: target.sentinelPassword })
      const reply = await connection.command('SENTINEL', 'get-master-addr-by-name', target.service)
      if (Array.isArray(reply)) return { host: reply[0], port: Number(reply[1]) }
      lastError = new Error(`the sentinels know no service ${target.service}`)
    } catch (error) {
      lastError = error
    } finally {
      connection?.close()
    }
  }
  throw lastError
}

/** The Cluster's primaries, from the first seed that answers `CLUSTER NODES`. */
async function clusterPrimaries(target) {
  let lastError
  for (const seed of target.nodes) {
    let connection
    try {
      connection = await login(seed, target)
      const text = await connection.command('CLUSTER', 'NODES')
      return text
        .split('\n')
        .map((line) => line.split(' '))
        .filter((f) => f.length > 2 && f[2].split(',').includes('master') && !f[2].includes('fail'))
        .map((f) => {
          const address = f[1].split('@')[0]
          const colon = address.lastIndexOf(':')
          // A node that does not know its own address reports ":port".
          return { host: address.slice(0, colon) || seed.host, port: Number(address.slice(colon + 1)) }
        })
    } catch (error) {
      lastError = error
    } finally {
      connection?.close()
    }
  }
  throw lastError
}

const globEscape = (text) => text.replace(/[*?[\]\\]/g, (c) => `\\${c}`)

/** SCAN for each pattern on one server, UNLINK what it finds (one key per command: any slot). */
async function sweepNode(node, target, patterns) {
  const connection = await login(node, target)
  let removed = 0
  try {
    for (const pattern of patterns) {
      let cursor = '0'
      do {
        const [nextCursor, keys] = await connection.command('SCAN', cursor, 'MATCH', pattern, 'COUNT', 1000)
        cursor = nextCursor
        const counts = await Promise.all(keys.map((key) => connection.command('UNLINK', key)))
        removed += counts.reduce((a, b) => a + b, 0)
      } while (cursor !== '0')
    }
  } finally {
    connection.close()
  }
  return removed
}

/**
 * Deletes every key of the namespace `keyPrefix` at `url`; resolves with how many there were.
 * Messages never repeat the URL (it may hold a password).
 */
export async function sweepNamespace(url, keyPrefix) {
  const target = parseRedisUrl(url)
  const patterns = [`{${globEscape(keyPrefix)}}:*`, `{${globEscape(keyPrefix)}:*`]
  let nodes = target.nodes.slice(0, 1)
  if (target.kind === 'sentinel') nodes = [await sentinelPrimary(target)]
  if (target.kind === 'cluster') nodes = await clusterPrimaries(target)
  let removed = 0
  for (const node of nodes) removed += await sweepNode(node, target, patterns)
  return removed
}
