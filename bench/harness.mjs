// What every scenario needs: an upstream (in a worker), the implementations behind one
// interface, a manual clock for the references, and statistics helpers.
import { fork } from 'node:child_process'
import { once } from 'node:events'

import { WeatherService, noopResolved } from '../main.js'
import { DashboardWeatherService } from './references/dashboard.mjs'
import { LruWeatherService } from './references/lru.mjs'
import { NaiveWeatherService } from './references/naive.mjs'

export const API_KEY = 'bench-key'
const silent = () => {}
/** Every call gets a session with a silent pino-style logger (the scaffold logs each hit). */
export const SESSION = { logger: { trace: silent, debug: silent, info: silent, warn: silent, error: silent, fatal: silent } }

/** Starts the simulated upstream (fixed latency, 20 ms by default) in a child process. */
export async function startUpstream(options = {}) {
  const child = fork(new URL('./upstream-process.mjs', import.meta.url), [JSON.stringify({ latencyMs: 20, ...options })])
  const [ready] = await once(child, 'message')
  return {
    url: ready.url,
    pid: child.pid,
    async stats() {
      child.send({ type: 'stats' })
      const [message] = await once(child, 'message')
      return message.stats
    },
    async close() {
      child.send({ type: 'close' })
      await once(child, 'exit')
    },
  }
}

function manualClock() {
  let now = Date.now()
  return { now: () => now, advance: (ms) => (now += ms) }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** The contenders, each as `{ getWeather, advance(ms), settle(), close() }`. */
export const IMPLEMENTATIONS = {
  'weather-cache': (url, options = {}) => {
    const service = new WeatherService({ apiKey: API_KEY, baseUrl: url, clock: 'manual', ...options })
    return {
      service,
      getWeather: (session, user, lat, lon) => service.getWeather(session, user, lat, lon),
      advance: (ms) => service.advanceTime(ms),
      async settle() {
        while (service.stats().inflight > 0) await sleep(1)
      },
      close: () => service.close(),
    }
  },
  naive: (url, options = {}) => reference(NaiveWeatherService, url, options),
  'lru-cache': (url, options = {}) => reference(LruWeatherService, url, options),
  dashboard: (url, options = {}) => reference(DashboardWeatherService, url, options),
}

function reference(Service, url, options) {
  const clock = manualClock()
  const service = new Service({ baseUrl: url, apiKey: API_KEY, now: clock.now, ...options })
  return {
    service,
    getWeather: (session, user, lat, lon) => service.getWeather(session, user, lat, lon),
    advance: clock.advance,
    // Background refreshes are fire-and-forget promises: give them the upstream latency.
    settle: () => sleep(25),
    close: () => service.close(),
  }
}

export const floor = () => noopResolved()

export function percentile(sorted, p) {
  if (sorted.length === 0) return 0
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]
}

/** Nanoseconds since `start` (a bigint from process.hrtime.bigint()). */
export const since = (start) => Number(process.hrtime.bigint() - start)
