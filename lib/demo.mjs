// `npm run demo` / `weather-cache demo`: the main job, on a laptop, with no API key and no network.
//
// A fleet of drones flies over a city for a simulated hour and asks for the weather every
// simulated 5 s. A few Dashboard users walk around and flip their units now and then. Everyone
// goes through one WeatherService, which talks to a simulated OpenWeather on 127.0.0.1 (latency,
// a per-minute limit with 429 + Retry-After, optional faults). The service runs on its manual
// clock, and each step settles before the clock moves, so one seed always gives the same counts.
import { rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { WeatherService } from '../main.js'
import { UsageError, parseFlags } from './cli-args.mjs'
import { Fleet } from './fleet.mjs'
import { startSimulatedUpstream } from './simulated-upstream.mjs'

export const DEMO_HELP = `Usage: weather-cache demo [options]   (npm run demo -- [options])

Simulates a drone fleet and a few Dashboard users against an embedded, simulated OpenWeather
(and, with --providers, Open-Meteo and MET Norway; no API key, no network) and shows what the
cache saves.

Options:
  --drones <n>              drones in the fleet (default 2000)
  --minutes <n>             simulated minutes (default 60)
  --latency-ms <n>          simulated upstream latency (default 20)
  --fault-rate <0..1>       share of upstream requests answered 500 (default 0)
  --rate-limit-per-min <n>  upstream requests allowed per minute before 429 (default 60,
                            like OpenWeather's free tier)
  --seed <n>                the fleet and the faults (default 1); same seed, same counts
  --instances <n>           also fly the fleet through n instances, without and with a shared
                            tier on Redis, and compare upstream calls (no rate limit unless
                            --rate-limit-per-min is given)
  --redis <url>             the Redis for --instances (default: a throwaway redis-server)
  --providers <list>        providers in order of preference, comma-separated, among
                            openweather, open-meteo, met-norway (default openweather); the
                            simulated upstream speaks all three, and OpenWeather's limit
                            drops to 10/min unless --rate-limit-per-min is given, so that
                            failover shows
  --forecasts               the simulated OpenWeather also sends hourly, daily, next-hour and
                            alert products; the Dashboard users ask for them
                            (getForecast include) and show "rain in 40 min"-style lines, and
                            the run is compared with one without products: same upstream calls
  --refresh-ahead-ms <n>    the service's refreshAheadMs (default: the service's default)
  --restart-at <minute>     restart the service at that simulated minute, once with a snapshot
                            (warm restart) and once without, and compare the calls
  --json                    print one JSON object instead of the table
  -h, --help                this text`

const FLAGS = {
  drones: { type: 'int', min: 1, max: 100_000 },
  minutes: { type: 'int', min: 1, max: 24 * 60 },
  'latency-ms': { type: 'int', min: 0, max: 10_000 },
  'fault-rate': { type: 'number', min: 0, max: 1 },
  'rate-limit-per-min': { type: 'int', min: 1 },
  seed: { type: 'int', min: 0, max: 2 ** 32 - 1 },
  instances: { type: 'int', min: 2, max: 64 },
  redis: { type: 'string' },
  providers: { type: 'string' },
  forecasts: { type: 'boolean' },
  json: { type: 'boolean' },
  'refresh-ahead-ms': { type: 'int', min: 0 },
  'restart-at': { type: 'int', min: 1, max: 24 * 60 },
}

const PROVIDER_NAMES = ['openweather', 'open-meteo', 'met-norway']

/** `--providers a,b`: checked names, in order. */
function providerList(text) {
  if (text === undefined) return undefined
  const names = text.split(',').map((name) => name.trim())
  if (new Set(names).size !== names.length) throw new UsageError('--providers: each provider once')
  for (const name of names) {
    if (!PROVIDER_NAMES.includes(name)) throw new UsageError(`--providers: unknown provider "${name}" (known: ${PROVIDER_NAMES.join(', ')})`)
  }
  return names
}

const STEP_S = 5
const DASHBOARD_USERS = 5
/** The simulated upstream checks the key; the demo's is not a real one. */
const DEMO_KEY = 'demo-key-not-a-real-one'

export function demoOptions(argv) {
  const { values, help } = parseFlags(argv, FLAGS)
  return {
    help,
    drones: values.drones ?? 2000,
    minutes: values.minutes ?? 60,
    latencyMs: values['latency-ms'] ?? 20,
    faultRate: values['fault-rate'] ?? 0,
    rateLimitPerMin: values['rate-limit-per-min'] ?? (values.instances ? Infinity : values.providers ? 10 : 60),
    providers: providerList(values.providers),
    seed: values.seed ?? 1,
    instances: values.instances ?? 1,
    redis: values.redis,
    forecasts: values.forecasts ?? false,
    json: values.json ?? false,
    refreshAheadMs: values['refresh-ahead-ms'],
    restartAt: values['restart-at'],
    // With --restart-at: whether the restarted service loads a snapshot (the CLI runs both).
    snapshot: false,
  }
}

/** Runs the simulation; `onProgress(done, total, stats)` is called after every step. */
export async function runDemo(options, onProgress = () => {}) {
  const { drones, minutes, latencyMs, faultRate, rateLimitPerMin, seed } = options
  let simulatedMs = 0
  const upstream = await startSimulatedUpstream({
    latencyMs,
    faultRate,
    seed,
    rateLimitPerMinute: rateLimitPerMin,
    now: () => simulatedMs,
    apiKey: DEMO_KEY,
    forecasts: options.forecasts,
    // The service's manual clock starts at the wall time: the products' times follow it.
    epochMs: Date.now(),
  })
  // jitterRatio 0: backoff windows are part of the counts, and the counts must repeat.
  // With --providers, every provider is the simulated upstream (each speaking its own format).
  const providers = options.providers?.map((name) => (name === 'met-norway' ? { name, baseUrl: upstream.url, userAgent: 'weather-cache-demo/1 (simulated)' } : { name, baseUrl: upstream.url }))
  const refreshAhead = options.refreshAheadMs === undefined ? {} : { refreshAheadMs: options.refreshAheadMs }
  const serviceOptions = { apiKey: DEMO_KEY, baseUrl: upstream.url, clock: 'manual', jitterRatio: 0, maxUsers: drones + 1000, providers, ...refreshAhead }
  // --restart-at: a warm restart reads what the first service wrote on close().
  const snapshotFile = join(tmpdir(), `weather-cache-demo-${process.pid}.snap`)
  const snapshot = options.restartAt !== undefined && options.snapshot ? { snapshot: snapshotFile } : {}
  let service = new WeatherService({ ...serviceOptions, ...snapshot })
  const restartStep = options.restartAt === undefined ? -1 : Math.round((options.restartAt * 60) / STEP_S)
  /** Counters of services closed by a restart, added to the last one's. */
  const before = []
  /** Upstream calls in the 5 simulated minutes after the restart. */
  let callsAfterRestart = 0
  const called = () => upstream.stats.requests
  const fleet = new Fleet({ drones, seed })
  const walkers = new Fleet({ drones: DASHBOARD_USERS, seed: seed + 1, radiusKm: 4, minSpeed: 1, maxSpeed: 2 })
  const dashboards = walkers.drones.map((walker, i) => ({ walker, index: i, user: dashboardUser(`dashboard-user-${i + 1}`) }))
  const steps = Math.round((minutes * 60) / STEP_S)
  const latencies = new Float64Array(steps * (drones + DASHBOARD_USERS))
  let measured = 0
  let unanswered = 0
  let toggles = 0
  // Latency counts from the end of the step's burst (or the call, if later): one thread issues
  // 2,000 requests per step, and no drone should be charged for the others' turn.
  let burstIssued = 0n
  const timed = (promise) => {
    const start = process.hrtime.bigint()
    return promise.then((weather) => {
      const from = start > burstIssued ? start : burstIssued
      latencies[measured++] = Number(process.hrtime.bigint() - from) / 1e6
      if (!weather) unanswered++
      return weather
    })
  }
  const started = Date.now()
  let restartedAtCalls = 0
  try {
    for (let step = 0; step < steps; step++) {
      if (step === restartStep) {
        // A deploy: the process goes, a new one comes, on the same simulated clock.
        const now = service.advanceTime(0)
        before.push(service.stats())
        service.close()
        service = new WeatherService({ ...serviceOptions, ...snapshot })
        service.advanceTime(Math.max(0, now - service.advanceTime(0)))
        restartedAtCalls = called()
      }
      if (restartStep >= 0 && step === restartStep + 60) callsAfterRestart = called() - restartedAtCalls
      const requests = fleet.drones.map((drone) => {
        const { lat, lon } = fleet.position(drone)
        return timed(service.getWeather(null, drone.id, lat, lon))
      })
      for (const dashboard of dashboards) {
        const { lat, lon } = walkers.position(dashboard.walker)
        const { session, show } = dashboard.user
        const asked = options.forecasts
          ? service.getForecast(session, session.userId, lat, lon, { include: DASHBOARD_PRODUCTS }).catch(() => null)
          : service.getWeather(session, session.userId, lat, lon)
        requests.push(timed(asked).then(show))
        // Each user flips °C/°F once a simulated minute (staggered): a re-render, never a request.
        if (step > 0 && step % 12 === (dashboard.index * 2) % 12) {
          dashboard.user.toggle()
          toggles++
        }
      }
      // Every fetch this step started (misses and background refreshes) is in flight now; the
      // simulated upstream answers them as one batch, whatever order they reach it in.
      upstream.expect(service.stats().inflight)
      burstIssued = process.hrtime.bigint()
      await Promise.all(requests)
      // Background refreshes land before the clock moves: that is what makes runs repeatable.
      while (service.stats().inflight > 0) await new Promise((resolve) => setTimeout(resolve, 1))
      onProgress(step + 1, steps, service.stats())
      fleet.step(STEP_S)
      walkers.step(STEP_S)
      service.advanceTime(STEP_S * 1000)
      simulatedMs += STEP_S * 1000
    }
  } finally {
    service.close()
    await upstream.close()
    rmSync(snapshotFile, { force: true })
  }
  if (restartStep >= 0 && restartStep + 60 >= steps) callsAfterRestart = called() - restartedAtCalls
  const s = sumStats([...before, service.stats()])
  // The same run without products: the upstream calls must be the same (the cost rule).
  const baseline = options.forecasts ? await runDemo({ ...options, forecasts: false }) : undefined
  const sorted = latencies.subarray(0, measured).sort()
  const pct = (p) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] : 0)
  const round = (x, digits) => Math.round(x * 10 ** digits) / 10 ** digits
  return {
    drones,
    dashboardUsers: DASHBOARD_USERS,
    minutes,
    seed,
    latencyMs,
    faultRate,
    rateLimitPerMin,
    requests: s.requests,
    upstreamCalls: s.upstreamRequests,
    byProvider: Object.fromEntries(s.providers.map((p) => [p.name, { calls: p.upstreamRequests, rateLimited: p.rateLimited, errors: p.upstreamErrors }])),
    // The legacy module called upstream on every request, and again on every unit toggle.
    naiveCalls: s.requests + toggles,
    hitRatio: round((s.userHits + s.sharedHits + s.staleHits) / s.requests, 6),
    hits: { user: s.userHits, shared: s.sharedHits, stale: s.staleHits },
    misses: s.misses,
    coalesced: s.coalesced,
    rejected: s.rejected,
    rateLimited: s.rateLimited,
    upstreamErrors: s.upstreamErrors,
    backgroundRefreshes: s.backgroundRefreshes,
    unanswered,
    unitToggles: toggles,
    dashboardRenders: dashboards.reduce((n, d) => n + d.user.renders, 0),
    p50Ms: round(pct(0.5), 3),
    p99Ms: round(pct(0.99), 3),
    upstreamSeen: { ...upstream.stats },
    ...(baseline
      ? {
          forecasts: {
            asked: dashboards.reduce((n, d) => n + d.user.forecasts, 0),
            upstreamCallsWithout: baseline.upstreamCalls,
            lines: dashboards.map((d) => `${d.user.session.userId}: ${d.user.text}`),
          },
        }
      : {}),
    ...(restartStep >= 0 ? { restartAt: options.restartAt, snapshot: options.snapshot, callsAfterRestart } : {}),
    wallMs: Date.now() - started,
  }
}

/** What a Dashboard user asks for with --forecasts. */
const DASHBOARD_PRODUCTS = ['nextHour', 'hourly', 'alerts']

/** "rain in 40 min", "rain now, for 20 min", "rain for the next hour" or "no rain this hour". */
export function rainLine(nextHour, now) {
  if (!nextHour || nextHour.length === 0) return null
  const wet = (p) => p.precipMm >= 0.1
  const minutes = (p) => Math.max(1, Math.ceil((p.time - now) / 60_000))
  if (wet(nextHour[0])) {
    const dry = nextHour.find((p) => !wet(p))
    return dry ? `rain now, for ${minutes(dry)} min` : 'rain for the next hour'
  }
  const wetAt = nextHour.find(wet)
  return wetAt ? `rain in ${minutes(wetAt)} min` : 'no rain this hour'
}

/** The counters of several services (one before a restart, one after) added up. */
function sumStats(all) {
  const [last] = all.slice(-1)
  const sum = { ...last }
  for (const key of Object.keys(last)) {
    if (typeof last[key] === 'number') sum[key] = all.reduce((n, s) => n + s[key], 0)
  }
  sum.providers = last.providers.map((p, i) => {
    const out = { ...p }
    for (const key of Object.keys(p)) if (typeof p[key] === 'number') out[key] = all.reduce((n, s) => n + s.providers[i][key], 0)
    return out
  })
  return sum
}

/** `--restart-at`: the same hour with a warm restart (snapshot) and a cold one, side by side. */
export function formatRestart(warm, cold) {
  const rows = [
    ['upstream calls', warm.upstreamCalls, cold.upstreamCalls],
    [`calls in the 5 min after`, warm.callsAfterRestart, cold.callsAfterRestart],
    ['429 answers', warm.rateLimited, cold.rateLimited],
    ['unanswered (null)', warm.unanswered, cold.unanswered],
    ['stale answers', warm.hits.stale, cold.hits.stale],
  ]
  const saved = cold.upstreamCalls - warm.upstreamCalls
  return [
    `weather-cache demo: restart at minute ${warm.restartAt} of ${warm.minutes}, seed ${warm.seed} (${((warm.wallMs + cold.wallMs) / 1000).toFixed(1)} s)`,
    `  ${''.padEnd(26)} ${'with snapshot'.padStart(14)} ${'cold restart'.padStart(14)}`,
    ...rows.map(([label, a, b]) => `  ${label.padEnd(26)} ${fmt(a).padStart(14)} ${fmt(b).padStart(14)}`),
    `  the snapshot saved ${fmt(saved)} upstream calls (${pct(saved / Math.max(1, cold.upstreamCalls))} of the cold restart's)`,
  ].join('\n')
}

/** A Dashboard user: its session (settings with the unit flag) and what its glasses show. */
function dashboardUser(userId) {
  let metric = true
  let latest = null
  const state = {
    session: { userId, settings: { getMentraosSetting: () => metric } },
    renders: 0,
    forecasts: 0,
    text: '',
    show(weather) {
      // getForecast's result (with --forecasts) or getWeather's summary.
      let extra = ''
      if (weather?.summary) {
        state.forecasts++
        const next = weather.hourly?.[1]
        const rain = rainLine(weather.nextHour, weather.meta.fetchedAt + weather.meta.ageMs)
        const alert = weather.alerts?.[0]?.event
        extra = [rain, next && `${metric ? `${next.tempC}°C` : `${next.tempF}°F`} next hour`, alert].filter(Boolean).join(' · ')
        weather = weather.summary
      }
      if (weather) latest = { ...weather, extra }
      if (!latest) return
      state.renders++
      state.text = `${latest.condition}, ${metric ? `${latest.tempC}°C` : `${latest.tempF}°F`}${latest.extra ? ` · ${latest.extra}` : ''}`
    },
    toggle() {
      metric = !metric
      state.show(null) // re-render from the cached summary
    },
  }
  return state
}

const fmt = (n) => n.toLocaleString('en-US')
const pct = (x) => `${(x * 100).toFixed(2)}%`

/** The summary table. */
export function formatSummary(r) {
  const shareOf = (n) => pct(n / r.requests)
  const rows = [
    ['requests', fmt(r.requests), `${fmt(r.drones)} drones + ${r.dashboardUsers} Dashboard users, every 5 s`],
    ['upstream calls', fmt(r.upstreamCalls), `legacy module: ${fmt(r.naiveCalls)} (${fmt(Math.round(r.naiveCalls / Math.max(1, r.upstreamCalls)))}x more)`],
    ...(Object.keys(r.byProvider).length > 1 ? [['calls by provider', Object.values(r.byProvider).map((p) => fmt(p.calls)).join(' / '), Object.entries(r.byProvider).map(([name, p]) => `${name} ${fmt(p.calls)} (${fmt(p.rateLimited)} rate-limited)`).join(', ')]] : []),
    ['hit ratio', pct(r.hitRatio), `user ${shareOf(r.hits.user)}, shared ${shareOf(r.hits.shared)}, stale ${shareOf(r.hits.stale)}`],
    ['coalesced waiters', fmt(r.coalesced), 'requests that shared a fetch already in flight'],
    ['rate-limit incidents', fmt(r.rateLimited), `429 answers (limit ${fmt(r.rateLimitPerMin)}/min; legacy would need ${fmt(Math.round(r.naiveCalls / r.minutes))}/min)`],
    ['upstream errors', fmt(r.upstreamErrors), `fault rate ${pct(r.faultRate)}`],
    ['unanswered (null)', fmt(r.unanswered), 'requests with nothing to serve'],
    ['latency p50 / p99', `${r.p50Ms} / ${r.p99Ms} ms`, `upstream latency ${r.latencyMs} ms; hits resolve at once`],
    ['unit toggles', fmt(r.unitToggles), 'each re-rendered from cache: 0 upstream calls'],
    ...(r.forecasts
      ? [['forecast products', fmt(r.forecasts.asked), `Dashboard answers with next hour, hourly and alerts: ${fmt(r.upstreamCalls - r.forecasts.upstreamCallsWithout)} extra upstream calls (${fmt(r.upstreamCalls)} with, ${fmt(r.forecasts.upstreamCallsWithout)} without products)`]]
      : []),
  ]
  const width = Math.max(...rows.map((row) => row[1].length))
  return [
    `weather-cache demo: ${r.minutes} simulated minutes, seed ${r.seed} (${(r.wallMs / 1000).toFixed(1)} s)`,
    ...rows.map(([label, value, note]) => `  ${label.padEnd(21)} ${value.padStart(width)}   ${note}`),
    ...(r.forecasts ? ['', 'What the Dashboard users see last:', ...r.forecasts.lines.map((line) => `  ${line}`)] : []),
  ].join('\n')
}

/** A one-line progress bar (TTY). */
export function progressBar(done, total, stats, minutes) {
  const width = 30
  const filled = Math.round((done / total) * width)
  const hits = stats.requests ? ((stats.userHits + stats.sharedHits + stats.staleHits) / stats.requests) * 100 : 0
  const minute = Math.round((done / total) * minutes)
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(minute).padStart(3)}/${minutes} min  ${fmt(stats.requests)} requests  ${fmt(stats.upstreamRequests)} upstream calls  ${hits.toFixed(2)}% hits`
}
