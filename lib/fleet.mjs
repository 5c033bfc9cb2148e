// A deterministic drone fleet moving over a city: the same seed always gives the same trace.
// Used by `npm run demo` and by the benchmarks' fleet trace.

/** Mulberry32: a small seeded PRNG (uniform in [0, 1)). */
export function random(seed) {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const KM_PER_DEG_LAT = 111.195

/**
 * `drones` drones inside a circle of `radiusKm` around `center`, each flying at a constant speed
 * between `minSpeed` and `maxSpeed` m/s, turning a little at every step and back towards the
 * centre when it reaches the edge.
 */
export class Fleet {
  constructor({ drones = 2000, seed = 1, center = { lat: 48.8566, lon: 2.3522 }, radiusKm = 15, minSpeed = 10, maxSpeed = 20 } = {}) {
    this.rand = random(seed)
    this.center = center
    this.radiusKm = radiusKm
    this.kmPerDegLon = KM_PER_DEG_LAT * Math.cos((center.lat * Math.PI) / 180)
    this.drones = Array.from({ length: drones }, (_, i) => {
      const r = radiusKm * Math.sqrt(this.rand())
      const a = 2 * Math.PI * this.rand()
      return {
        id: `drone-${String(i).padStart(4, '0')}`,
        x: r * Math.cos(a), // km east of the centre
        y: r * Math.sin(a), // km north of the centre
        heading: 2 * Math.PI * this.rand(),
        speed: minSpeed + (maxSpeed - minSpeed) * this.rand(), // m/s
      }
    })
  }

  /** Where drone `d` is, in degrees. */
  position(d) {
    return { lat: this.center.lat + d.y / KM_PER_DEG_LAT, lon: this.center.lon + d.x / this.kmPerDegLon }
  }

  /** Moves every drone forward by `seconds`. */
  step(seconds) {
    for (const d of this.drones) {
      d.heading += (this.rand() - 0.5) * 0.3
      if (Math.hypot(d.x, d.y) > this.radiusKm) d.heading = Math.atan2(-d.y, -d.x) + (this.rand() - 0.5)
      const km = (d.speed * seconds) / 1000
      d.x += km * Math.cos(d.heading)
      d.y += km * Math.sin(d.heading)
    }
  }
}
