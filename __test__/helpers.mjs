// Shared test helpers: a service wired to a loopback upstream, on the manual clock.
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
