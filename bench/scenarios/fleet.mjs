// Fleet trace: drones flying at 10-20 m/s for a simulated hour, one request per drone every
// simulated 5 s, every drone of a step concurrently. Upstream calls are compared with the ideal:
// the same trace replayed sequentially through an unbounded cache with the same 5 km / 10 min
// rule. Its target is a count, so a --quick run keeps the workload (seconds for weather-cache) and
// leaves out the references (a minute or more each at this size).
//
// weather-cache refreshes ahead by default (refreshAheadMs: a busy entry is refetched in the
// last 20 s of its fresh window, so it is never served stale). The plain ideal lets entries
// expire and refetches on the next request; over a one-hour trace an entry refreshed ahead at
// minute 59.8 counts a call the plain ideal would make at minute 60.1, outside the trace. So
// the ideal is also computed with the same refresh-ahead rule, and weather-cache with its
// defaults is judged against that one; weather-cache with refresh-ahead off is shown against
// the plain ideal.
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

/** weather-cache's default `refreshAheadMs` (docs/api.md, "Options"). */
export const REFRESH_AHEAD_MS = 20_000

/**
 * Sequential replay through an unbounded cache: a miss leaves an entry at the request point.
 * With `aheadMs`, a request that only fresh entries in their last `aheadMs` cover refreshes the
 * newest of them (one call; the refresh lands at once), as refresh-ahead does.
 */
export function ideal(steps, { radiusKm = 5, ttlMs = 600_000, aheadMs = 0 } = {}) {
  const cell = 0.05 // degrees; a radius of 5 km spans at most 2 cells either way here
  const cells = new Map()
  let misses = 0
  steps.forEach((positions, s) => {
    const now = s * STEP_S * 1000
    for (const p of positions) {
      const row = Math.floor(p.lat / cell)
      const col = Math.floor(p.lon / cell)
      let hit = false
      let ending = null // the newest covering entry in its refresh-ahead window
      for (let r = row - 2; r <= row + 2 && !hit; r++) {
        for (let c = col - 3; c <= col + 3 && !hit; c++) {
          const entries = cells.get(`${r}:${c}`)
          if (!entries) continue
          for (let i = entries.length - 1; i >= 0; i--) {
            if (now - entries[i].at >= ttlMs) entries.splice(i, 1)
            else if (distanceKm(p.lat, p.lon, entries[i].lat, entries[i].lon) <= radiusKm) {
              if (now - entries[i].at < ttlMs - aheadMs) hit = true
              else if (!ending || entries[i].at > ending.at) ending = entries[i]
            }
          }
        }
      }
      if (!hit && ending) {
        misses++
        ending.at = now
      } else if (!hit) {
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
  const idealAhead = ideal(steps, { aheadMs: REFRESH_AHEAD_MS })
  const row = (calls, base) => ({ requests, upstreamCalls: calls, hitRatio: 1 - calls / requests, vsIdeal: calls / idealCalls, vsBase: calls / base })
  const results = {
    ideal: row(idealCalls, idealCalls),
    [`ideal, refreshed ahead (${REFRESH_AHEAD_MS / 1000} s)`]: row(idealAhead, idealAhead),
  }
  // [name, implementation, options, the ideal it is measured against]
  const contenders = [
    ['weather-cache', IMPLEMENTATIONS['weather-cache'], {}, idealAhead],
    ['weather-cache, refreshAheadMs 0', IMPLEMENTATIONS['weather-cache'], { refreshAheadMs: 0 }, idealCalls],
    ...(quick ? [] : Object.entries(IMPLEMENTATIONS).filter(([name]) => name !== 'weather-cache').map(([name, make]) => [name, make, {}, idealCalls])),
  ]
  for (const [name, make, options, base] of contenders) {
    const upstream = await startUpstream({ latencyMs: 20 })
    const impl = make(upstream.url, { maxUsers: drones * 2, ...options })
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
    const result = { ...row(calls, base), unanswered, wallS }
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
