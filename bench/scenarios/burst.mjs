// Burst: 10,000 simultaneous requests over 100 areas from a cold cache. Its target is a count
// (one upstream call per area), so a --quick run keeps the workload and leaves out the references
// (seconds each at this size).
import { IMPLEMENTATIONS, SESSION, percentile, since, startUpstream } from '../harness.mjs'
import { random } from '../../lib/fleet.mjs'

export async function burst({ quick }) {
  const total = 10_000
  const areas = Array.from({ length: 100 }, (_, k) => ({ lat: 35 + Math.floor(k / 10) * 1.5, lon: -5 + (k % 10) * 2 }))
  const rand = random(2024)
  // Each request: one of the areas, up to ~500 m off its centre, a distinct user.
  const requests = Array.from({ length: total }, (_, i) => {
    const area = areas[i % areas.length]
    return { user: `user-${i}`, lat: area.lat + (rand() - 0.5) * 0.009, lon: area.lon + (rand() - 0.5) * 0.012 }
  })
  const results = {}
  const contenders = quick ? { 'weather-cache': IMPLEMENTATIONS['weather-cache'] } : IMPLEMENTATIONS
  for (const [name, make] of Object.entries(contenders)) {
    const upstream = await startUpstream({ latencyMs: 20 })
    const impl = make(upstream.url, { maxUsers: total * 2 })
    const latencies = new Float64Array(total)
    let failed = 0
    const start = process.hrtime.bigint()
    await Promise.all(
      requests.map(async (r, i) => {
        const t = process.hrtime.bigint()
        const weather = await impl.getWeather(SESSION, r.user, r.lat, r.lon).catch(() => null)
        latencies[i] = since(t)
        if (!weather) failed++
      }),
    )
    const wallMs = since(start) / 1e6
    await impl.settle()
    const { requests: calls } = await upstream.stats()
    latencies.sort()
    results[name] = { requests: total, areas: areas.length, upstreamCalls: calls, callsPerArea: calls / areas.length, wallMs, p50Ms: percentile(latencies, 50) / 1e6, p99Ms: percentile(latencies, 99) / 1e6, failed }
    impl.close()
    await upstream.close()
  }
  return results
}
