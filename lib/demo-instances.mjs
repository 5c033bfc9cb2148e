// `npm run demo -- --instances N [--redis URL]`: what a shared tier saves when a fleet is served
// by N instances on one API key (Dashboard replicas, proxy hosts).
//
// The same fleet flies three times over the same simulated OpenWeather: through one process,
// through N instances that share nothing, and through N instances sharing a tier on Redis. Each
// drone always asks the same instance (drone i -> instance i mod N), as behind a sticky load
// balancer. Without `--redis`, a throwaway redis-server is started on 127.0.0.1 (Debian's
// `redis-server` must be installed). A given Redis is left as it was found: the run writes
// under a key prefix of its own and deletes every key under it at the end, also when it fails or
// is stopped by SIGINT / SIGTERM.
import { randomBytes } from 'node:crypto'

import { WeatherService } from '../main.js'
import { Fleet } from './fleet.mjs'
import { redisServerInstalled, startRedis } from './local-redis.mjs'
import { sweepNamespace } from './redis-sweep.mjs'
import { startSimulatedUpstream } from './simulated-upstream.mjs'

const STEP_S = 5
const DEMO_KEY = 'demo-key-not-a-real-one'

/** Runs the three set-ups; `onProgress(label, done, total)` after every step of each. */
export async function runInstancesDemo(options, onProgress = () => {}) {
  const { instances, redis: redisUrl } = options
  if (!redisUrl && !redisServerInstalled()) {
    throw Object.assign(new Error('--instances needs a Redis: pass --redis URL, or install redis-server (apt-get install redis-server)'), {
      usage: true,
    })
  }
  const local = redisUrl ? null : await startRedis()
  const url = redisUrl ?? local.url
  // This run's namespace: it never sees another run's entries, and takes back its own keys.
  const keyPrefix = `weather-cache-demo-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`
  const started = Date.now()
  const signals = redisUrl ? watchSignals() : null
  let cleanup = null
  try {
    const setups = [
      { label: 'one process', instances: 1, redis: null },
      { label: `${instances} instances, nothing shared`, instances, redis: null },
      { label: `${instances} instances, shared tier (Redis)`, instances, redis: url },
    ]
    const rows = []
    for (const setup of setups) rows.push(await fly(options, { ...setup, keyPrefix, signals }, (done, total) => onProgress(setup.label, done, total)))
    const [one, alone, shared] = rows
    const wallMs = Date.now() - started
    if (redisUrl) cleanup = await removeKeys(redisUrl, keyPrefix)
    return {
      drones: options.drones,
      minutes: options.minutes,
      instances,
      seed: options.seed,
      redis: redisUrl ? 'given' : 'local redis-server',
      // With a given Redis: the prefix written under and the keys deleted (or why not).
      ...(cleanup ? { cleanup } : {}),
      rows,
      sharedVsOneProcess: round(shared.upstreamCalls / one.upstreamCalls, 3),
      nothingSharedVsOneProcess: round(alone.upstreamCalls / one.upstreamCalls, 3),
      wallMs,
    }
  } finally {
    signals?.dispose()
    // A run that failed or was stopped still takes its keys back (its error is the one to report).
    if (redisUrl && !cleanup) cleanup = await removeKeys(redisUrl, keyPrefix)
    await local?.stop()
    if (signals?.received) {
      console.error(
        cleanup.error ? `weather-cache demo: ${signals.received}: ${cleanup.error}` : `weather-cache demo: ${signals.received}: deleted the ${cleanup.removed} keys it wrote to Redis`,
      )
      // End as the signal would have.
      process.kill(process.pid, signals.received)
    }
  }
}

/** Deletes the run's keys; never throws: `{ keyPrefix, removed }` or `{ keyPrefix, error }`. */
async function removeKeys(url, keyPrefix) {
  try {
    return { keyPrefix, removed: await sweepNamespace(url, keyPrefix) }
  } catch (error) {
    return { keyPrefix, error: `could not delete the keys under {${keyPrefix}}: ${error.message}` }
  }
}

/**
 * SIGINT / SIGTERM while the demo uses a given Redis: noted, so that the run stops at the end of
 * its step (when nothing is in flight), deletes its keys, and then ends as the signal would have.
 */
function watchSignals() {
  const watch = {
    received: null,
    dispose() {
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
    },
  }
  const onSignal = (signal) => {
    watch.received ??= signal
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  return watch
}

class Stopped extends Error {}

async function fly({ drones, minutes, latencyMs, seed, rateLimitPerMin, redisTimeoutMs }, setup, onStep) {
  let simulatedMs = 0
  const upstream = await startSimulatedUpstream({ latencyMs, seed, rateLimitPerMinute: rateLimitPerMin, now: () => simulatedMs, apiKey: DEMO_KEY })
  // `redisTimeoutMs` (the bench's): the tier's deadline, when not the default.
  const redis = setup.redis && {
    url: setup.redis,
    keyPrefix: setup.keyPrefix,
    ...(redisTimeoutMs ? { timeoutMs: redisTimeoutMs } : {}),
  }
  const services = Array.from({ length: setup.instances }, () =>
    new WeatherService({ apiKey: DEMO_KEY, baseUrl: upstream.url, clock: 'manual', jitterRatio: 0, maxUsers: drones + 1000, ...(redis ? { redis } : {}) }),
  )
  const fleet = new Fleet({ drones, seed })
  const steps = Math.round((minutes * 60) / STEP_S)
  let unanswered = 0
  try {
    for (let step = 0; step < steps; step++) {
      if (setup.signals?.received) throw new Stopped(`stopped by ${setup.signals.received}`)
      const answers = await Promise.all(fleet.drones.map((drone, i) => {
        const { lat, lon } = fleet.position(drone)
        return services[i % services.length].getWeather(null, drone.id, lat, lon)
      }))
      unanswered += answers.filter((a) => !a).length
      while (services.some((s) => s.stats().inflight > 0)) await new Promise((resolve) => setTimeout(resolve, 1))
      onStep(step + 1, steps)
      fleet.step(STEP_S)
      for (const service of services) service.advanceTime(STEP_S * 1000)
      simulatedMs += STEP_S * 1000
    }
  } finally {
    for (const service of services) service.close()
    await upstream.close()
  }
  const stats = services.map((s) => s.stats())
  const sum = (key) => stats.reduce((n, s) => n + s[key], 0)
  return {
    label: setup.label,
    instances: setup.instances,
    requests: sum('requests'),
    upstreamCalls: upstream.stats.requests,
    tierHits: sum('tierHits'),
    // Redis operations that failed (a missed deadline included), and times an instance went
    // local: a run that had any did not measure sharing alone.
    tierErrors: sum('tierErrors'),
    circuitOpenings: stats.reduce((n, s) => n + Object.values(s.tier?.circuitOpenings ?? {}).reduce((a, b) => a + b, 0), 0),
    hitRatio: round((sum('userHits') + sum('sharedHits') + sum('staleHits')) / sum('requests'), 6),
    rateLimited: sum('rateLimited'),
    unanswered,
  }
}

const round = (x, digits) => Math.round(x * 10 ** digits) / 10 ** digits
const fmt = (n) => n.toLocaleString('en-US')

export function formatInstancesSummary(r) {
  const width = Math.max(...r.rows.map((row) => row.label.length))
  const lines = [
    `weather-cache demo: ${fmt(r.drones)} drones, ${r.minutes} simulated minutes, ${r.instances} instances (${(r.wallMs / 1000).toFixed(1)} s)`,
    `  ${'set-up'.padEnd(width)}  ${'upstream calls'.padStart(14)}  ${'vs one process'.padStart(14)}  ${'local hits'.padStart(10)}  ${'tier hits'.padStart(9)}`,
  ]
  for (const row of r.rows) {
    const ratio = `${(row.upstreamCalls / r.rows[0].upstreamCalls).toFixed(2)}x`
    lines.push(
      `  ${row.label.padEnd(width)}  ${fmt(row.upstreamCalls).padStart(14)}  ${ratio.padStart(14)}  ${`${(row.hitRatio * 100).toFixed(2)}%`.padStart(10)}  ${fmt(row.tierHits).padStart(9)}`,
    )
  }
  lines.push(`  Each instance alone asks upstream for what the others already know; with the shared tier they ask once.`)
  if (r.cleanup?.error) lines.push(`  Warning: ${r.cleanup.error}.`)
  else if (r.cleanup) lines.push(`  Your Redis is as it was: the ${fmt(r.cleanup.removed)} keys written under {${r.cleanup.keyPrefix}} were deleted.`)
  return lines.join('\n')
}
