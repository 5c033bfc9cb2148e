// Main-thread cost: event-loop utilisation per request with 10 % misses (upstream latency 20 ms,
// so a miss waits idle; what counts is the work done on the JS thread).
import { performance } from 'node:perf_hooks'

import { IMPLEMENTATIONS, SESSION, startUpstream } from '../harness.mjs'
import { random } from '../../lib/fleet.mjs'

export async function mainThread({ quick }) {
  const batches = quick ? 5 : 40
  const hot = Array.from({ length: 100 }, (_, i) => ({ user: `hot-${i}`, lat: 51.5 + (i % 10) * 0.01, lon: -0.12 + Math.floor(i / 10) * 0.01 }))
  const results = {}
  for (const [name, make] of Object.entries(IMPLEMENTATIONS)) {
    const upstream = await startUpstream({ latencyMs: 20 })
    const impl = make(upstream.url, { maxUsers: 200_000, sharedCapacity: 100_000 })
    for (const h of hot) await impl.getWeather(SESSION, h.user, h.lat, h.lon)
    const rand = random(99)
    let requests = 0
    const before = performance.eventLoopUtilization()
    const start = performance.now()
    for (let b = 0; b < batches; b++) {
      const batch = []
      for (let i = 0; i < 1000; i++) {
        if (i % 10 === 0) {
          // A miss: somewhere nobody asked about before.
          batch.push(impl.getWeather(SESSION, `cold-${b}-${i}`, -60 + rand() * 120, -180 + rand() * 360))
        } else {
          const h = hot[Math.floor(rand() * hot.length)]
          batch.push(impl.getWeather(SESSION, h.user, h.lat, h.lon))
        }
      }
      await Promise.all(batch)
      requests += batch.length
    }
    const elu = performance.eventLoopUtilization(before)
    const wallMs = performance.now() - start
    results[name] = { requests, activeMs: elu.active, utilization: elu.utilization, usPerRequest: (elu.active * 1000) / requests, wallMs }
    await impl.settle()
    impl.close()
    await upstream.close()
  }
  return results
}
