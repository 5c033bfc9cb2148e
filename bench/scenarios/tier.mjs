// The shared tier (needs redis-server): what N instances on one API key cost the upstream with
// and without it, and how long a request answered from Redis takes.
//
// - Fleet: the demo's fleet (2,000 drones, an hour, a request per drone every 5 s) through one
//   process, through 4 instances sharing nothing, and through 4 instances sharing a tier, for
//   seeds 1 to 5 (the fleet's trace, and the simulated weather). The target is on the median of
//   the five ratios: calls of 4 instances sharing a tier over calls of one process. Runs vary:
//   the four instances race to Redis, and which lease wins decides which areas get fetched.
//   The tier's deadline is 1 s here, not the default 100 ms: the bench packs four instances,
//   the upstream and Redis onto this machine's two cores, and a stall of the whole process
//   (another process's build, say) would be taken for Redis failing, sending every instance
//   local for a second, which is hundreds of simulated steps. How the tier rides out a Redis
//   that is slow or failing is what the tests check; this measures sharing when it is healthy.
//   `--tier-timeout-ms 100` measures it with the default deadline; the tables say which.
// - L2 hit latency: instance A fills 500 far-apart areas; instance B, whose local caches are
//   empty, asks about each in turn: every answer comes from Redis. For scale, the same for B's
//   local hits and for misses against the 20 ms upstream.
import { WeatherService } from '../../main.js'
import { runInstancesDemo } from '../../lib/demo-instances.mjs'
import { startRedis } from '../../lib/local-redis.mjs'
import { API_KEY, percentile, startUpstream } from '../harness.mjs'

export const SEEDS = [1, 2, 3, 4, 5]

/** The tier's deadline in the fleet runs, unless the bench is told otherwise (see above). */
export const FLEET_TIMEOUT_MS = 1000

export async function tier({ quick, timeoutMs = FLEET_TIMEOUT_MS }) {
  const fleetOptions = { drones: quick ? 500 : 2000, minutes: quick ? 20 : 60, latencyMs: 20, rateLimitPerMin: Infinity, instances: 4, redisTimeoutMs: timeoutMs }
  const redis = await startRedis()
  try {
    const seeds = []
    for (const seed of quick ? SEEDS.slice(0, 2) : SEEDS) seeds.push(await runInstancesDemo({ ...fleetOptions, seed, redis: redis.url }))
    const ratios = seeds.map((s) => s.sharedVsOneProcess).sort((a, b) => a - b)
    const latency = await l2Latency(redis.url, quick ? 100 : 500)
    return { timeoutMs, fleet: seeds[0], seeds, medianSharedVsOneProcess: ratios[Math.floor(ratios.length / 2)], latency }
  } finally {
    await redis.stop()
  }
}

async function l2Latency(url, areas) {
  const upstream = await startUpstream({ latencyMs: 20 })
  const redis = { url, keyPrefix: `bench-${process.pid}-${Date.now()}` }
  const a = new WeatherService({ apiKey: API_KEY, baseUrl: upstream.url, redis })
  const b = new WeatherService({ apiKey: API_KEY, baseUrl: upstream.url, redis })
  const spot = (i) => [-60 + (i % 120), -170 + Math.floor(i / 120) * 10 + (i % 7)]
  const time = async (call) => {
    const start = process.hrtime.bigint()
    const result = await call()
    return { ms: Number(process.hrtime.bigint() - start) / 1e6, result }
  }
  try {
    const misses = []
    for (let i = 0; i < areas; i++) misses.push((await time(() => a.getForecast(null, 'a', ...spot(i)))).ms)
    // Let the last write-throughs land.
    await new Promise((resolve) => setTimeout(resolve, 200))
    const l2 = []
    for (let i = 0; i < areas; i++) {
      const { ms, result } = await time(() => b.getForecast(null, `b${i}`, ...spot(i)))
      if (result.meta.source !== 'cache') throw new Error(`area ${i} was not answered from the tier`)
      l2.push(ms)
    }
    const local = []
    for (let i = 0; i < areas; i++) local.push((await time(() => b.getForecast(null, `b${i}`, ...spot(i)))).ms)
    const stats = b.stats()
    if (stats.tierHits !== areas || stats.fetches !== 0) throw new Error(`B: ${stats.tierHits} tier hits, ${stats.fetches} fetches`)
    const summary = (samples) => {
      const sorted = Float64Array.from(samples).sort()
      return { p50Ms: percentile(sorted, 50), p99Ms: percentile(sorted, 99) }
    }
    return { areas, upstreamMiss: summary(misses), tierHit: summary(l2), localHit: summary(local) }
  } finally {
    a.close()
    b.close()
    await upstream.close()
  }
}
