// A simulated OpenWeather One Call 3.0 on 127.0.0.1, for `npm run demo` and the benchmarks: no API
// key and no network needed. It also speaks Open-Meteo and MET Norway (each at its own path),
// for the demo's `--providers`. With `forecasts`, its One Call answers carry what the real ones
// do without `exclude`: `minutely` (61 minutes of precipitation), `hourly` (48), `daily` (8) and
// `alerts` (one Wind Advisory), all derived from the same simulated weather.
//
// It answers `GET /data/3.0/onecall?lat&lon&…` with weather derived from the coordinates and the
// (simulated) time, after `latencyMs`. It enforces a per-minute request limit per provider (429
// with Retry-After; OpenWeather's is `rateLimitPerMinute`) and can fail a share of requests
// (HTTP 500). Everything random is derived from
// the coordinates, the simulated minute and the seed, not from arrival order: requests are
// answered in batches sorted by location. A caller that knows how many requests a batch will
// hold says so with `expect(n)`, and the batch waits for all of them, so the same run gives
// the same answers however the requests raced to the socket and however busy the machine is.
import http from 'node:http'

const CONDITIONS = ['Clear', 'Clouds', 'Clouds', 'Rain', 'Drizzle', 'Mist', 'Snow', 'Thunderstorm']

/** A hash of the arguments in [0, 1). */
function unit(...parts) {
  let h = 2166136261
  for (const part of parts) {
    const text = String(part)
    for (let i = 0; i < text.length; i++) {
      h ^= text.charCodeAt(i)
      h = Math.imul(h, 16777619)
    }
  }
  h ^= h >>> 15
  h = Math.imul(h, 0x2c1b3c6d)
  h ^= h >>> 12
  return (h >>> 0) / 4294967296
}

/** The simulated weather at a place and time: smooth in space, drifting over the day. */
export function simulatedWeather(lat, lon, atMs) {
  const hours = atMs / 3_600_000
  const celsius = 27 - 0.45 * Math.abs(lat) + 4 * Math.sin(lat * 7 + lon * 5) + 5 * Math.sin((2 * Math.PI * hours) / 24)
  const condition = CONDITIONS[Math.floor(unit(Math.round(lat * 20), Math.round(lon * 20), Math.floor(hours)) * CONDITIONS.length)]
  return { celsius: Math.round(celsius * 100) / 100, condition }
}

/**
 * Starts the server. `now` is the clock the per-minute limit and the weather follow (the demo
 * passes its simulated clock). Resolves to `{ url, port, stats, close() }`.
 */
export async function startSimulatedUpstream({
  host = '127.0.0.1',
  port = 0,
  latencyMs = 20,
  rateLimitPerMinute = Infinity,
  faultRate = 0,
  seed = 1,
  now = Date.now,
  apiKey,
  openMeteoPerMinute = 600,
  metNorwayPerMinute = Infinity,
  forecasts = false,
  epochMs = 0,
} = {}) {
  const stats = { requests: 0, answered: 0, rateLimited: 0, faults: 0, rejected: 0, byProvider: {} }
  const limits = { openweather: rateLimitPerMinute, 'open-meteo': openMeteoPerMinute, 'met-norway': metNorwayPerMinute }
  const windows = new Map() // `${provider} ${minute}` -> requests admitted
  let batch = []
  let timer = null
  let waitingFor = 0 // set by expect(): hold the batch until it has this many requests
  let guard = null

  function schedule() {
    if (timer || batch.length === 0) return
    if (waitingFor > batch.length) return
    waitingFor = 0
    timer = setTimeout(flush, latencyMs)
  }

  function flush() {
    timer = null
    const pending = batch.sort((a, b) => a.lat - b.lat || a.lon - b.lon || (a.provider < b.provider ? -1 : 1))
    batch = []
    for (const request of pending) answer(request)
  }

  function answer({ res, lat, lon, provider }) {
    if (res.destroyed) return
    const counts = (stats.byProvider[provider] ??= { requests: 0, answered: 0, rateLimited: 0, faults: 0 })
    counts.requests++
    const at = now()
    const minute = Math.floor(at / 60_000)
    const window = `${provider} ${minute}`
    const admitted = windows.get(window) ?? 0
    if (admitted >= limits[provider]) {
      stats.rateLimited++
      counts.rateLimited++
      const retryAfter = Math.max(1, Math.ceil(((minute + 1) * 60_000 - at) / 1000))
      return send(res, 429, { cod: 429, message: 'Your account is temporarily blocked due to exceeding of requests limitation' }, { 'Retry-After': String(retryAfter) })
    }
    windows.set(window, admitted + 1)
    if (windows.size > 30) windows.delete(windows.keys().next().value)
    if (faultRate > 0 && unit(seed, provider, lat.toFixed(4), lon.toFixed(4), minute) < faultRate) {
      stats.faults++
      counts.faults++
      return send(res, 500, { cod: 500, message: 'Internal error (simulated)' })
    }
    stats.answered++
    counts.answered++
    const { celsius, condition } = simulatedWeather(lat, lon, at)
    const body = BODIES[provider](lat, lon, at, celsius, condition)
    send(res, 200, forecasts && provider === 'openweather' ? withForecasts(body, lat, lon, at, epochMs) : body)
  }

  const server = http.createServer((req, res) => {
    stats.requests++
    const url = new URL(req.url, 'http://localhost')
    const provider = PATHS[url.pathname]
    const lat = Number(url.searchParams.get(provider === 'open-meteo' ? 'latitude' : 'lat'))
    const lon = Number(url.searchParams.get(provider === 'open-meteo' ? 'longitude' : 'lon'))
    if (provider === undefined) {
      stats.rejected++
      return send(res, 404, { cod: 404, message: 'Not found' })
    }
    if (provider === 'openweather' && apiKey !== undefined && url.searchParams.get('appid') !== apiKey) {
      stats.rejected++
      return send(res, 401, { cod: 401, message: 'Invalid API key.' })
    }
    if (!Number.isFinite(lat) || !Number.isFinite(lon) || Math.abs(lat) > 90 || Math.abs(lon) > 180) {
      stats.rejected++
      return send(res, 400, { cod: '400', message: 'wrong latitude or longitude' })
    }
    batch.push({ res, lat, lon, provider })
    schedule()
  })
  const sockets = new Set()
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, resolve)
  })
  const address = server.address()
  return {
    url: `http://${address.address}:${address.port}`,
    port: address.port,
    stats,
    /** The next batch holds `n` requests: answer none before all arrived (at most 5 s). */
    expect(n) {
      waitingFor = n
      clearTimeout(guard)
      guard = setTimeout(() => {
        waitingFor = 0
        schedule()
      }, 5000)
      guard.unref()
      schedule()
    },
    async close() {
      if (timer) clearTimeout(timer)
      clearTimeout(guard)
      for (const socket of sockets) socket.destroy()
      await new Promise((resolve) => server.close(resolve))
    },
  }
}

const PATHS = {
  '/data/3.0/onecall': 'openweather',
  '/v1/forecast': 'open-meteo',
  '/weatherapi/locationforecast/2.0/compact': 'met-norway',
}

/** WMO codes and MET Norway symbols for the simulated conditions. */
const WMO = { Clear: 0, Clouds: 3, Rain: 61, Drizzle: 53, Mist: 45, Snow: 71, Thunderstorm: 95 }
const SYMBOLS = { Clear: 'clearsky_day', Clouds: 'cloudy', Rain: 'rain', Drizzle: 'lightrain', Mist: 'fog', Snow: 'snow', Thunderstorm: 'rainandthunder' }

/** Each provider's answer body for one reading. */
const BODIES = {
  openweather: (lat, lon, at, celsius, condition) => ({
    lat,
    lon,
    timezone: 'UTC',
    timezone_offset: 0,
    current: { dt: Math.floor(at / 1000), temp: celsius, feels_like: celsius, weather: [{ id: 800, main: condition, description: condition.toLowerCase() }] },
  }),
  'open-meteo': (lat, lon, at, celsius, condition) => ({
    latitude: lat,
    longitude: lon,
    current: { time: new Date(at).toISOString().slice(0, 16), interval: 900, temperature_2m: celsius, weather_code: WMO[condition] },
  }),
  'met-norway': (lat, lon, at, celsius, condition) => ({
    type: 'Feature',
    properties: {
      timeseries: [{ time: new Date(at).toISOString(), data: { instant: { details: { air_temperature: celsius } }, next_1_hours: { summary: { symbol_code: SYMBOLS[condition] } } } }],
    },
  }),
}

/** Precipitation (mm/h) a simulated condition brings. */
const RAIN_MM_PER_H = { Rain: 1.8, Drizzle: 0.3, Thunderstorm: 4.5 }

/**
 * A One Call body with the parts a real answer without `exclude` has, from the simulated weather.
 * Times are `epochMs` + the simulated time (the demo's service clock starts at its wall time).
 */
function withForecasts(body, lat, lon, at, epochMs) {
  const dt = (ms) => Math.floor((epochMs + ms) / 1000)
  const weather = (condition) => [{ main: condition, description: condition.toLowerCase() }]
  const minuteStart = Math.floor((epochMs + at) / 60_000) * 60_000 - epochMs
  const minutely = Array.from({ length: 61 }, (_, i) => {
    const when = minuteStart + i * 60_000
    return { dt: dt(when), precipitation: RAIN_MM_PER_H[simulatedWeather(lat, lon, when).condition] ?? 0 }
  })
  const hourStart = Math.floor((epochMs + at) / 3_600_000) * 3_600_000 - epochMs
  const hourly = Array.from({ length: 48 }, (_, i) => {
    const when = hourStart + i * 3_600_000
    const { celsius, condition } = simulatedWeather(lat, lon, when)
    const rain = RAIN_MM_PER_H[condition]
    return { dt: dt(when), temp: celsius, feels_like: celsius - 1, humidity: 70, wind_speed: 4 + (i % 5), wind_gust: 8 + (i % 7), weather: weather(condition), pop: rain ? 0.8 : 0.1, ...(rain ? { rain: { '1h': rain } } : {}) }
  })
  const dayStart = Math.floor((epochMs + at) / 86_400_000) * 86_400_000 - epochMs
  const daily = Array.from({ length: 8 }, (_, d) => {
    const hours = Array.from({ length: 24 }, (_, h) => simulatedWeather(lat, lon, dayStart + d * 86_400_000 + h * 3_600_000))
    const temps = hours.map((h) => h.celsius)
    const noon = hours[12]
    return {
      dt: dt(dayStart + d * 86_400_000 + 12 * 3_600_000), sunrise: dt(dayStart + d * 86_400_000 + 7 * 3_600_000), sunset: dt(dayStart + d * 86_400_000 + 17 * 3_600_000),
      temp: { min: Math.min(...temps), max: Math.max(...temps), day: noon.celsius }, weather: weather(noon.condition),
      pop: hours.some((h) => RAIN_MM_PER_H[h.condition]) ? 0.7 : 0.1, rain: hours.reduce((sum, h) => sum + (RAIN_MM_PER_H[h.condition] ?? 0), 0),
    }
  })
  const alerts = [{ sender_name: 'Simulated Weather Service', event: 'Wind Advisory', start: dt(hourStart), end: dt(hourStart + 6 * 3_600_000), description: 'Gusts up to 60 km/h (simulated).', tags: ['Wind'] }]
  return { ...body, current: { ...body.current, humidity: 70, pressure: 1012, wind_speed: 5, wind_deg: 240, clouds: 40, visibility: 10000, uvi: 1 }, minutely, hourly, daily, alerts }
}

function send(res, status, body, headers = {}) {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), ...headers })
  res.end(text)
}
