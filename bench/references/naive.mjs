// Reference 1, "naive": the seed plan's TypeScript scaffold (weather.service.ts) as plain JS.
// Per-user Map (20 entries per user) and a shared Map by exact bucket key (no neighbouring
// cells, never evicted), haversine check, stale-while-revalidate, and in-flight requests keyed
// by user|bucket (so two users never share a fetch). Same 5 km / 10 min rule as the addon.
import { bucketKey, distanceKm, fetchCurrent } from './common.mjs'

export class NaiveWeatherService {
  constructor({ baseUrl, apiKey, now = Date.now, proximityKm = 5, gridDeg = 0.045, freshTtlMs = 600_000, staleTtlMs = 7_200_000, minRefreshIntervalMs = 300_000, maxUserEntries = 20 }) {
    Object.assign(this, { baseUrl, apiKey, now, proximityKm, gridDeg, freshTtlMs, staleTtlMs, minRefreshIntervalMs, maxUserEntries })
    this.perUserCache = new Map()
    this.perUserLRU = new Map()
    this.sharedCache = new Map()
    this.inflight = new Map()
  }

  async getWeather(session, userId, lat, lon) {
    return (await this.getForecast(session, userId, lat, lon)).summary
  }

  async getForecast(session, userId, lat, lon) {
    const logger = session?.logger ?? console
    const bk = bucketKey(lat, lon, this.gridDeg)
    const n = this.now()
    const near = (entry) => distanceKm(entry.lat, entry.lon, lat, lon) <= this.proximityKm

    const userEntry = this.perUserCache.get(userId)?.get(bk)
    if (userEntry && near(userEntry)) {
      userEntry.lastAccessed = n
      if (userEntry.expiresAt > n) {
        logger.debug?.({ userId, bk }, 'weather.cache.hit.fresh (user)')
        return { summary: userEntry.summary, meta: { source: 'cache', fetchedAt: userEntry.fetchedAt } }
      }
      if (userEntry.staleUntil > n) {
        logger.debug?.({ userId, bk }, 'weather.cache.hit.stale (user)')
        this.revalidate(session, userId, lat, lon, bk, n).catch(() => {})
        return { summary: userEntry.summary, meta: { source: 'stale-cache', fetchedAt: userEntry.fetchedAt } }
      }
    }
    const shared = this.sharedCache.get(bk)
    if (shared && near(shared)) {
      shared.lastAccessed = n
      this.upsertUser(userId, { ...shared })
      if (shared.expiresAt > n) {
        logger.debug?.({ userId, bk }, 'weather.cache.hit.fresh (shared)')
        return { summary: shared.summary, meta: { source: 'cache', fetchedAt: shared.fetchedAt } }
      }
      if (shared.staleUntil > n) {
        logger.debug?.({ userId, bk }, 'weather.cache.hit.stale (shared)')
        this.revalidate(session, userId, lat, lon, bk, n).catch(() => {})
        return { summary: shared.summary, meta: { source: 'stale-cache', fetchedAt: shared.fetchedAt } }
      }
    }
    const key = `${userId}|${bk}`
    const existing = this.inflight.get(key)
    if (existing) return existing
    const p = this.fetchAndCache(session, userId, lat, lon, bk, n).finally(() => this.inflight.delete(key))
    this.inflight.set(key, p)
    return p
  }

  async fetchAndCache(session, userId, lat, lon, bk, n) {
    try {
      const summary = await fetchCurrent(this.baseUrl, this.apiKey, lat, lon)
      const entry = { bk, lat, lon, summary, fetchedAt: n, expiresAt: n + this.freshTtlMs, staleUntil: n + this.staleTtlMs, lastAccessed: n }
      this.upsertUser(userId, entry)
      this.sharedCache.set(bk, entry)
      return { summary, meta: { source: 'network', fetchedAt: n } }
    } catch (err) {
      const fallback = this.perUserCache.get(userId)?.get(bk) ?? this.sharedCache.get(bk)
      if (fallback && fallback.staleUntil > n) return { summary: fallback.summary, meta: { source: 'stale-cache', fetchedAt: fallback.fetchedAt } }
      return { summary: null, meta: { source: 'stale-cache', fetchedAt: 0 } }
    }
  }

  revalidate(session, userId, lat, lon, bk, n) {
    const latest = this.perUserCache.get(userId)?.get(bk) ?? this.sharedCache.get(bk)
    if (latest && n - latest.fetchedAt < this.minRefreshIntervalMs) return Promise.resolve()
    return this.fetchAndCache(session, userId, lat, lon, bk, n)
  }

  upsertUser(userId, entry) {
    let entries = this.perUserCache.get(userId)
    if (!entries) {
      entries = new Map()
      this.perUserCache.set(userId, entries)
      this.perUserLRU.set(userId, [])
    }
    entries.set(entry.bk, entry)
    const lru = this.perUserLRU.get(userId)
    const at = lru.indexOf(entry.bk)
    if (at >= 0) lru.splice(at, 1)
    lru.push(entry.bk)
    while (lru.length > this.maxUserEntries) entries.delete(lru.shift())
  }

  close() {}
}
