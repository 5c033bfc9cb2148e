// The shared tier (needs redis-server): what N instances on one API key cost the upstream with
// and without it, and how long a request answered from Redis takes.
//
// - Fleet: the demo's fleet (2,000 drones, an hour, a request per drone every 5 s) through one
//   process, through 4 instances sharing nothing, and through 4 instances sharing a tier.
// - L2 hit latency: instance A fills 500 far-apart areas; instance B, whose local caches are
//   empty, asks about each in turn: every answer comes from Redis. For scale, the same for B's
//   local hits and for misses against the 20 ms upstream.
import { WeatherService } from '../../main.js'
import { runInstancesDemo } from '../../lib/demo-instances.mjs'
import { startRedis } from '../../lib/local-redis.mjs'
import { API_KEY, percentile, startUpstream } from '../harness.mjs'

export async function tier({ quick }) {
  const fleetOptions = { drones: quick ? 500 : 2000, minutes: quick ? 20 : 60, latencyMs: 20, seed: 1, rateLimitPerMin: Infinity, instances: 4 }
  const redis = await startRedis()
  try {
    const fleet = await runInstancesDemo({ ...fleetOptions, redis: redis.url })
    const latency = await l2Latency(redis.url, quick ? 100 : 500)
    return { fleet, latency }
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
