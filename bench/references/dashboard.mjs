// Reference 3, "dashboard": the MentraOS Dashboard's WeatherService as it runs today, written
// from its description. One plain async method:
// 1. the user's one entry (a Map by user id), if fresh and within 5 km;
// 2. else the shared Map by geohash (precision 5, npm ngeohash) of the point, then of its 8
//    neighbours, each hit confirmed fresh and within 5 km, and copied to the user;
// 3. else a fetch (no coalescing), kept 10 minutes, the shared Map an LRU of 1,000 kept as an
//    array (indexOf/splice on insert).
import ngeohash from 'ngeohash'

import { distanceKm, fetchCurrent } from './common.mjs'

export class DashboardWeatherService {
  constructor({ baseUrl, apiKey, now = Date.now, proximityKm = 5, freshTtlMs = 600_000, sharedCapacity = 1000 }) {
    Object.assign(this, { baseUrl, apiKey, now, proximityKm, freshTtlMs, sharedCapacity })
    this.users = new Map()
    this.shared = new Map()
    this.order = []
  }

  async getWeather(session, userId, lat, lon) {
    const now = this.now()
    const own = this.users.get(userId)
    if (own && own.expiresAt > now && distanceKm(own.lat, own.lon, lat, lon) <= this.proximityKm) return own.summary
    const hash = ngeohash.encode(lat, lon, 5)
    for (const cell of [hash, ...ngeohash.neighbors(hash)]) {
      const entry = this.shared.get(cell)
      if (entry && entry.expiresAt > now && distanceKm(entry.lat, entry.lon, lat, lon) <= this.proximityKm) {
        this.users.set(userId, entry)
        return entry.summary
      }
    }
    let summary
    try {
      summary = await fetchCurrent(this.baseUrl, this.apiKey, lat, lon)
    } catch {
      return null
    }
    const entry = { lat, lon, summary, expiresAt: this.now() + this.freshTtlMs }
    this.shared.set(hash, entry)
    const at = this.order.indexOf(hash)
    if (at >= 0) this.order.splice(at, 1)
    this.order.push(hash)
    if (this.order.length > this.sharedCapacity) this.shared.delete(this.order.shift())
    this.users.set(userId, entry)
    return summary
  }

  close() {}
}
