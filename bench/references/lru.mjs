// Reference 2, "lru-cache": the same lookup order on npm's lru-cache. Users are an LRU of
// their last entry; areas an LRU by bucket key whose fetch() coalesces concurrent misses of one
// key (but not of neighbouring keys). Same 5 km / 10 min rule; lru-cache's `perf` is the clock.
import { LRUCache } from 'lru-cache'

import { bucketKey, distanceKm, fetchCurrent } from './common.mjs'

export class LruWeatherService {
  constructor({ baseUrl, apiKey, now = Date.now, proximityKm = 5, gridDeg = 0.045, freshTtlMs = 600_000, maxUsers = 100_000, sharedCapacity = 1000 }) {
    Object.assign(this, { now, proximityKm, gridDeg, freshTtlMs })
    const perf = { now }
    this.users = new LRUCache({ max: maxUsers, perf })
    this.areas = new LRUCache({
      max: sharedCapacity,
      ttl: freshTtlMs,
      perf,
      fetchMethod: async (key, stale, { context }) => {
        const summary = await fetchCurrent(baseUrl, apiKey, context.lat, context.lon)
        return { lat: context.lat, lon: context.lon, summary, fetchedAt: now() }
      },
    })
  }

  async getWeather(session, userId, lat, lon) {
    const fresh = (entry) => entry && this.now() - entry.fetchedAt < this.freshTtlMs
    const near = (entry) => distanceKm(entry.lat, entry.lon, lat, lon) <= this.proximityKm
    const own = this.users.get(userId)
    if (fresh(own) && near(own)) return own.summary
    const key = bucketKey(lat, lon, this.gridDeg)
    try {
      let entry = await this.areas.fetch(key, { context: { lat, lon } })
      // The cell's entry may be fresh but too far away: fetch for this spot instead.
      if (!near(entry)) entry = await this.areas.fetch(key, { forceRefresh: true, context: { lat, lon } })
      this.users.set(userId, entry)
      return entry.summary
    } catch {
      return null
    }
  }

  close() {}
}
