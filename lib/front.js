// The front: answers a user's repeat `getWeather` in JS, with no N-API call, when the addon
// would answer it from that user's own fresh entry. Crossing N-API costs more than a whole hit
// of a lean JS cache, and a user asking again near where they asked before is the common case.
//
// It only ever answers what the engine would (see src/binding/front.rs for the other half):
// - it remembers, per user, an answer the addon gave at once from a fresh entry that became the
//   user's newest, with the version of that user's entries at that moment (a counter per bucket
//   of user ids, src/cache/versions.rs);
// - it answers from it while that version has not moved (the user's entries did not change
//   since, so the lookup would find the same entry), the entry is fresh on the service clock, and the
//   point is within `proximityKm` of it (a hair inside: at the very edge JS's and Rust's
//   trigonometry may disagree in the last bit, and the addon decides);
// - what it answered goes back to the addon (`frontFlush`) before any other call reaches it,
//   and at the latest on the next turn of the event loop: counters as user hits, and users and
//   entries as recently used, in the order of their last hits, which is all an LRU remembers.
// Anything else goes to the addon, exactly as without a front.
'use strict'

// The view the addon writes (src/binding/front.rs).
const VIEW_ANSWERED = 0
const VIEW_LAT = 1
const VIEW_LON = 2
const VIEW_EXPIRES_AT = 3
const VIEW_BUCKET = 4
const VIEW_VERSION = 5
const VIEW_NOW = 6

/**
 * Users whose last answers the front keeps (fewer when `maxUsers` is lower): the most recently
 * answered by the addon. Past that, a user's repeat hits cross N-API as without a front; the
 * front keeps under ~5 MB (~290 B of V8 heap per user) however many users the engine tracks.
 */
const MAX_REMEMBERED_USERS = 16_384

/**
 * The system clock as the addon reads it. Taken at load: test tools that fake `Date` (jest,
 * sinon, node:test's mock timers) must not make the front keep what the engine let expire.
 */
const systemNow = Date.now

const EARTH_RADIUS_KM = 6371
const RADIANS = Math.PI / 180
const EDGE_KM = 1e-9
/** The share of the radius the trigonometry-free bound may accept (see `within`). */
const BOUND_SHARE = 1 - 1e-7

/** The engine's haversine (src/geo/distance.rs), operation for operation. */
function distanceKm(lat1, lon1, lat2, lon2) {
  const sLat = Math.sin(((lat2 - lat1) * RADIANS) / 2)
  const sLon = Math.sin(((lon2 - lon1) * RADIANS) / 2)
  const h = sLat * sLat + Math.cos(lat1 * RADIANS) * Math.cos(lat2 * RADIANS) * sLon * sLon
  return 2 * EARTH_RADIUS_KM * Math.asin(Math.min(Math.sqrt(h), 1))
}

/** What a user was last answered at once. One per user, updated in place. */
class Memory {
  constructor(user) {
    this.user = user
    this.lat = 0
    this.lon = 0
    this.expiresAt = 0
    this.cosLat = 1
    this.bucket = 0
    this.version = -1
    /** The addon's already resolved Promise of the entry's frozen summary. */
    this.promise = undefined
    /** The front's hit counter at this user's last hit (0: none yet). */
    this.hitAt = 0
  }
}

class Front {
  #native
  #versions
  #view
  #radiusKm
  #boundLimit
  #boundScale
  #maxUsers
  #manualClock
  /** user -> Memory, least recently answered by the addon first. */
  #memories = new Map()
  /** Memories hit since the last flush, in order of their first hit: `#touched[0..#count]`. */
  #touched = []
  #count = 0
  #hits = 0
  /** Hits ever answered; `#flushedAt` of them are back in the addon. */
  #hitCounter = 0
  #flushedAt = 0
  #armed = false
  /** Calls to the addon's getWeather so far (see `expect`). */
  #calls = 0
  #flushSoon

  constructor(native, channel) {
    this.#native = native
    this.#versions = new Uint32Array(channel.versions)
    this.#view = new Float64Array(channel.view)
    this.#radiusKm = channel.proximityKm - EDGE_KM
    const r = channel.proximityKm * BOUND_SHARE
    this.#boundLimit = r * r
    this.#boundScale = 4 * EARTH_RADIUS_KM * EARTH_RADIUS_KM + r * r
    this.#maxUsers = Math.min(channel.maxUsers, MAX_REMEMBERED_USERS)
    this.#manualClock = channel.manualClock
    this.#flushSoon = () => {
      this.#armed = false
      this.flush()
    }
  }

  /** The Promise the addon would return for this hit, or `undefined` when the addon must answer. */
  answer(user, lat, lon) {
    const memory = this.#memories.get(user)
    if (memory === undefined || memory.version !== this.#versions[memory.bucket]) return undefined
    const now = this.#manualClock ? this.#view[VIEW_NOW] : systemNow()
    // Both sides are exact integers below 2^53; beyond, rounding is monotonic, so a `true` here
    // still means fresh.
    if (!(memory.expiresAt > now)) return undefined
    // Numbers only: a numeric string or a Number object compares fine, but the addon rejects it.
    if (typeof lat !== 'number' || typeof lon !== 'number') return undefined
    if (!(lat >= -90 && lat <= 90 && lon >= -180 && lon <= 180)) return undefined
    if (!this.#within(memory, lat, lon)) return undefined
    if (memory.hitAt <= this.#flushedAt) this.#touched[this.#count++] = memory
    memory.hitAt = ++this.#hitCounter
    this.#hits++
    if (!this.#armed) {
      this.#armed = true
      setImmediate(this.#flushSoon)
    }
    return memory.promise
  }

  /**
   * Whether the engine would find (lat, lon) within the radius of the memory's entry. First a
   * bound with no trigonometry, which accepts only points well inside (it never accepts one the
   * engine would not): with Δφ, Δλ in radians, the engine's h = sin²(Δφ/2) + cos φ₁ cos φ₂
   * sin²(Δλ/2) is at most H = (Δφ² + c Δλ²) / 4 with c = cos φ₁ (cos φ₁ + |Δφ|) (|sin x| ≤
   * |x|, and cosine moves no faster than its argument), and its distance 2R asin √h at most
   * 2R √(H / (1 - H)) (asin ≤ tan); that is ≤ r when H (4R² + r²) ≤ r². Otherwise, and near
   * the edge, the engine's own haversine.
   */
  #within(memory, lat, lon) {
    const dLat = (lat - memory.lat) * RADIANS
    const dLon = (lon - memory.lon) * RADIANS
    const c = memory.cosLat * (memory.cosLat + Math.abs(dLat))
    const bound = 0.25 * (dLat * dLat + c * dLon * dLon)
    if (bound * this.#boundScale <= this.#boundLimit) return true
    return distanceKm(lat, lon, memory.lat, memory.lon) <= this.#radiusKm
  }

  /** Hits answered here so far. */
  get answered() {
    return this.#hitCounter
  }

  /**
   * Before a call to the addon's getWeather: one that fails its argument checks leaves the view
   * alone. Returns the call's number for `learn`.
   */
  expect() {
    this.#view[VIEW_ANSWERED] = 0
    return ++this.#calls
  }

  /**
   * After the addon answered call `call` for `user` (the view describes that call): remember or
   * forget. Unless another call ran inside it (a session's logger getter may call getWeather):
   * the view then describes that one, and the memory stays as it was (its version still guards
   * it).
   */
  learn(call, user, promise) {
    if (call !== this.#calls) return
    const view = this.#view
    if (view[VIEW_ANSWERED] !== 1) {
      this.#memories.delete(user)
      return
    }
    let memory = this.#memories.get(user)
    if (memory === undefined) {
      if (this.#memories.size >= this.#maxUsers) this.#memories.delete(this.#memories.keys().next().value)
      memory = new Memory(user)
    } else {
      this.#memories.delete(user) // to the end: most recently answered
    }
    this.#memories.set(user, memory)
    memory.lat = view[VIEW_LAT]
    memory.lon = view[VIEW_LON]
    memory.cosLat = Math.cos(memory.lat * RADIANS)
    memory.expiresAt = view[VIEW_EXPIRES_AT]
    memory.bucket = view[VIEW_BUCKET]
    memory.version = view[VIEW_VERSION]
    memory.promise = promise
  }

  /** Hands the hits answered here to the addon. Call before anything else reaches it. */
  flush() {
    const count = this.#count
    if (count === 0) return
    const touched = this.#touched.slice(0, count).sort((a, b) => a.hitAt - b.hitAt)
    const hits = this.#hits
    this.#touched.fill(undefined, 0, count)
    this.#count = 0
    this.#hits = 0
    this.#flushedAt = this.#hitCounter
    this.#native.frontFlush(
      touched.map((memory) => memory.user),
      hits,
    )
  }

  forget(user) {
    this.#memories.delete(user)
  }

  clear() {
    this.#memories.clear()
  }
}

module.exports = { Front, distanceKm }
