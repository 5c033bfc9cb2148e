// `weather-cache serve` as a real process, for the serve tests: start it on an ephemeral port,
// talk to it over raw sockets (heads a fetch() would never send), and read its metrics.
import { spawn } from 'node:child_process'
import net from 'node:net'
import { fileURLToPath } from 'node:url'

import { API_KEY, startUpstream } from './upstream.mjs'

export const bin = fileURLToPath(new URL('../bin/weather-cache.mjs', import.meta.url))

/**
 * Which way in the serve tests use: the npm CLI (`node bin/weather-cache.mjs serve`), or with
 * WEATHER_CACHE_SERVE_ENTRY=binary the `weather-cache-server` binary (serve-binary.test.mjs runs
 * the serve suites so). The binary is target/debug/weather-cache-server, which `cargo test
 * --workspace` builds (npm test runs it first), or WEATHER_CACHE_SERVER_BIN.
 */
export const entry = process.env.WEATHER_CACHE_SERVE_ENTRY === 'binary' ? 'binary' : 'npm'
export const serverBinary = process.env.WEATHER_CACHE_SERVER_BIN ?? fileURLToPath(new URL('../target/debug/weather-cache-server', import.meta.url))
/** How messages start: `weather-cache: ...` or `weather-cache-server: ...`. */
export const program = entry === 'binary' ? 'weather-cache-server' : 'weather-cache'

/** Spawns `serve` with `args` through the entry point under test. */
export function spawnServe(args, options = {}) {
  return entry === 'binary' ? spawn(serverBinary, args, options) : spawn(process.execPath, [bin, 'serve', ...args], options)
}

/** Starts `weather-cache serve` and resolves once it says where it listens. */
export function startServe(args, env = {}) {
  return new Promise((resolve, reject) => {
    const child = spawnServe(['--port', '0', ...args], { env: { ...process.env, ...env } })
    let stdout = ''
    let stderr = ''
    const exited = new Promise((done) => child.on('exit', (code, signal) => done({ code, signal, stdout, stderr })))
    child.exited = exited
    child.stdout.on('data', (d) => {
      stdout += d
      const match = /listening on (https?:\/\/[^ ]+)/.exec(stdout)
      if (match) resolve({ url: match[1], child, exited, output: () => stdout, errors: () => stderr })
    })
    child.stderr.on('data', (d) => (stderr += d))
    exited.then(({ code }) => reject(new Error(`serve exited (${code}) before listening:\n${stdout}\n${stderr}`)))
  })
}

/** A serve process on a fresh upstream, stopped (SIGKILL) and cleaned up after `fn`. */
export async function withProxy(behaviour, fn, args = [], env = {}) {
  const upstream = await startUpstream(behaviour)
  let proxy
  try {
    proxy = await startServe(['--upstream', upstream.url, '--api-key', API_KEY, ...args], env)
  } catch (error) {
    await upstream.close()
    throw error
  }
  try {
    await fn({ upstream, proxy, get: (path, init) => fetch(`${proxy.url}${path}`, init) })
  } finally {
    proxy.child.kill('SIGKILL')
    await proxy.exited
    await upstream.close()
  }
}

/** Runs `weather-cache serve` with `args` to its exit: `{ code, stdout, stderr }`. */
export function runServe(args, env = {}) {
  return new Promise((resolve) => {
    const child = spawnServe(args, { env: { ...process.env, ...env } })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('exit', (code) => resolve({ code, stdout, stderr }))
  })
}

export const port = (proxy) => Number(new URL(proxy.url).port)

/**
 * A raw TCP client: what it received, when the server closed on it, and whether that close was
 * a reset. `localAddress` picks the client's address (any of 127.0.0.0/8 works on Linux).
 */
export function rawClient(portNumber, send = '', { localAddress } = {}) {
  const socket = net.connect({ port: portNumber, host: '127.0.0.1', localAddress })
  const started = Date.now()
  let data = ''
  let error = null
  socket.on('data', (d) => (data += d))
  const closed = new Promise((resolve) => {
    socket.on('close', () => resolve({ data, afterMs: Date.now() - started, error }))
    socket.on('error', (e) => (error = e))
  })
  socket.on('connect', () => send && socket.write(send))
  return { socket, closed }
}

/** One request on a connection of its own (`Connection: close`): the raw response. */
export async function rawRequest(portNumber, head, options) {
  const { data } = await rawClient(portNumber, head, options).closed
  return parseResponse(data)
}

/** `{ status, headers (lower-case names, repeated ones joined by ", "), body }` of a raw response. */
export function parseResponse(raw) {
  const split = raw.indexOf('\r\n\r\n')
  if (split < 0) return { status: 0, headers: {}, body: '', raw }
  const [statusLine, ...lines] = raw.slice(0, split).split('\r\n')
  const headers = {}
  for (const line of lines) {
    const colon = line.indexOf(':')
    const name = line.slice(0, colon).toLowerCase()
    const value = line.slice(colon + 1).trim()
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value
  }
  return { status: Number(statusLine.split(' ')[1]), headers, body: raw.slice(split + 4), raw }
}

/** A Prometheus sample's value by its full series text (`name{label="x"}`), 0 when absent. */
export function sample(metrics, series) {
  const line = metrics.split('\n').find((l) => l.startsWith(`${series} `))
  return line ? Number(line.slice(series.length + 1)) : 0
}

/** Resident memory of a process, in KiB. */
export async function rssKiB(pid) {
  const { readFileSync } = await import('node:fs')
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1])
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
