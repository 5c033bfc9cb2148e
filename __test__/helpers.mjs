// Shared test helpers: a service wired to a loopback upstream, on the manual clock; a Node
// child process run to its end; an instance in a child process driven over IPC.
import { fork, spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'

import { WeatherService } from '../main.js'
import { API_KEY, startUpstream } from './upstream.mjs'

/** A fresh upstream and a service pointed at it (manual clock, no jitter). */
export async function setup(options = {}, behaviour) {
  const upstream = await startUpstream(behaviour)
  // `provider` (tests only): the one provider to ask, at this upstream.
  const { provider, ...rest } = options
  const providers = provider === undefined ? {} : { providers: [providerAt(provider, upstream.url)] }
  const service = new WeatherService({ apiKey: API_KEY, baseUrl: upstream.url, clock: 'manual', jitterRatio: 0, ...providers, ...rest })
  return {
    upstream,
    service,
    async teardown() {
      service.close()
      await upstream.close()
    },
  }
}

/** A `providers` entry for `name` at the loopback upstream `url`. */
export function providerAt(name, url) {
  if (name === 'met-norway') return { name, baseUrl: url, userAgent: 'weather-cache-tests/1 tests@example.test' }
  return { name, baseUrl: url }
}

/** Runs `fn` with a fresh setup and always tears it down. */
export async function withService(options, fn, behaviour) {
  const env = await setup(options, behaviour)
  try {
    return await fn(env)
  } finally {
    await env.teardown()
  }
}

/** Resolves after pending I/O callbacks ran (lets background work land). */
export async function until(condition, what = 'condition', timeoutMs = 5000) {
  const start = Date.now()
  while (!condition()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

/**
 * Resolves once every rejection left unhandled so far has been reported (`unhandledRejection`):
 * Node reports them after the microtasks of the turn that made them, before the next turn's
 * immediates. Wait first for what would make such a rejection (a logger call recorded).
 */
export const rejectionsReported = () => new Promise((resolve) => setImmediate(resolve))

/** A pino-like logger that records `{ level, msg, obj, self }` for every call. */
export function recordingLogger({ throws = false } = {}) {
  const records = []
  const logger = {}
  for (const level of ['trace', 'debug', 'info', 'warn', 'error', 'fatal']) {
    logger[level] = function (obj, msg) {
      records.push({ level, msg, obj, self: this })
      if (throws) throw new Error('the logger itself failed')
    }
  }
  return {
    logger,
    records,
    /** Event names in order, without the (numerous) distance events. */
    names: () => records.filter((r) => r.msg !== 'weather.distance.computed').map((r) => r.msg),
    find: (msg) => records.filter((r) => r.msg === msg),
  }
}

const root = fileURLToPath(new URL('..', import.meta.url))
const instanceFixture = fileURLToPath(new URL('./fixtures/instance.mjs', import.meta.url))

/** Runs Node with `args` in the package root; resolves with its output and exit code. */
export function runNode(args, { env = {}, timeoutMs = 20_000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: root, env: { ...process.env, ...env } })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`child did not exit within ${timeoutMs} ms\n${stdout}\n${stderr}`))
    }, timeoutMs)
    child.on('exit', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

/** A weather-cache instance in a child process, driven over IPC (fixtures/instance.mjs). */
export async function processInstance(options) {
  const child = fork(instanceFixture, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const exited = once(child, 'exit')
  await once(child, 'message')
  const pending = new Map()
  let next = 0
  child.on('message', (m) => {
    if (m.id === undefined) return
    pending.get(m.id)(m)
    pending.delete(m.id)
  })
  const call = (type, args = {}) =>
    new Promise((resolve, reject) => {
      const id = next++
      pending.set(id, (m) => (m.ok ? resolve(m.value) : reject(Object.assign(new Error(m.error.message), m.error))))
      child.send({ id, type, ...args })
    })
  await call('create', { options })
  return { call, child, exited, kill: () => child.kill('SIGKILL') }
}
