// Fleet trace: drones flying at 10-20 m/s for a simulated hour, one request per drone every
// simulated 5 s, every drone of a step concurrently. Upstream calls are compared with the ideal:
// the same trace replayed sequentially through an unbounded cache with the same 5 km / 10 min
// rule. Its target is a count, so a --quick run keeps the workload (seconds for weather-cache) and
// leaves out the references (a minute or more each at this size).
import { IMPLEMENTATIONS, SESSION, startUpstream } from '../harness.mjs'
import { distanceKm } from '../references/common.mjs'
import { Fleet } from '../../lib/fleet.mjs'

const STEP_S = 5

export function trace({ drones, minutes, seed }) {
  const fleet = new Fleet({ drones, seed })
  const steps = []
  for (let s = 0; s < (minutes * 60) / STEP_S; s++) {
    steps.push(fleet.drones.map((d) => ({ id: d.id, ...fleet.position(d) })))
    fleet.step(STEP_S)
  }
  return steps
}

/** Sequential replay through an unbounded cache: a miss leaves an entry at the request point. */
export function ideal(steps, { radiusKm = 5, ttlMs = 600_000 } = {}) {
  const cell = 0.05 // degrees; a radius of 5 km spans at most 2 cells either way here
  const cells = new Map()
  let misses = 0
  steps.forEach((positions, s) => {
    const now = s * STEP_S * 1000
    for (const p of positions) {
      const row = Math.floor(p.lat / cell)
      const col = Math.floor(p.lon / cell)
      let hit = false
      for (let r = row - 2; r <= row + 2 && !hit; r++) {
        for (let c = col - 3; c <= col + 3 && !hit; c++) {
          const entries = cells.get(`${r}:${c}`)
          if (!entries) continue
          for (let i = entries.length - 1; i >= 0; i--) {
            if (now - entries[i].at >= ttlMs) entries.splice(i, 1)
            else if (distanceKm(p.lat, p.lon, entries[i].lat, entries[i].lon) <= radiusKm) hit = true
          }
        }
      }
      if (!hit) {
        misses++
        const key = `${row}:${col}`
        if (!cells.has(key)) cells.set(key, [])
        cells.get(key).push({ lat: p.lat, lon: p.lon, at: now })
      }
    }
  })
  return misses
}

export async function fleetTrace({ quick }) {
  const drones = 2000
  const minutes = 60
  const steps = trace({ drones, minutes, seed: 7 })
  const requests = drones * steps.length
  const idealCalls = ideal(steps)
  const results = { ideal: { requests, upstreamCalls: idealCalls, hitRatio: 1 - idealCalls / requests, vsIdeal: 1 } }
  const contenders = quick ? { 'weather-cache': IMPLEMENTATIONS['weather-cache'] } : IMPLEMENTATIONS
  for (const [name, make] of Object.entries(contenders)) {
    const upstream = await startUpstream({ latencyMs: 20 })
    const impl = make(upstream.url, { maxUsers: drones * 2 })
    // Requests answered without weather (null): fewer calls are no saving when they come from
    // answering nothing (an upstream that cannot be reached makes none at all).
    let unanswered = 0
    const start = process.hrtime.bigint()
    for (const positions of steps) {
      const answers = await Promise.all(positions.map((p) => impl.getWeather(SESSION, p.id, p.lat, p.lon).catch(() => null)))
      for (const answer of answers) if (!answer) unanswered++
      await impl.settle()
      impl.advance(STEP_S * 1000)
    }
    const wallS = Number(process.hrtime.bigint() - start) / 1e9
    const { requests: calls } = await upstream.stats()
    const result = { requests, upstreamCalls: calls, hitRatio: 1 - calls / requests, vsIdeal: calls / idealCalls, unanswered, wallS }
    if (impl.service.stats) {
      const s = impl.service.stats()
      result.cacheHitRatio = (s.userHits + s.sharedHits + s.staleHits) / s.requests
    }
    results[name] = result
    impl.close()
    await upstream.close()
  }
  return { drones, minutes, results }
}
