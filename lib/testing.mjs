// `weather-cache/testing`: a fake OpenWeather One Call 3.0 on loopback, for testing code that
// uses a `WeatherService` (point the service's `baseUrl` and `apiKey` at it). It is the server
// this package's own suite runs against, so what it answers is what the suite has checked: the
// same body shapes, the same 401 for a wrong key, the same failures.
//
// Answers are set with plain objects ("replies"): a reading, an HTTP error (429 with or without
// Retry-After, 401, 5xx), a malformed body, each optionally late; per place (the nearest set
// place within its radius answers) or for everywhere else. Every request is logged. It also
// speaks Open-Meteo and MET Norway at their own paths, for services given `providers`.
//
// Plain `node:http`, no addon: it runs in Node and in Bun, in the test's own process.
import http from 'node:http'

/** The key a fake accepts unless told another (`options.apiKey`); any other gets 401. */
export const API_KEY = 'test-key-0123456789abcdef'

/** Deterministic weather from the coordinates: the same place always gets the same answer. */
export function weatherAt(lat, lon) {
  const celsius = Math.round((15 + 10 * Math.sin(lat) + 5 * Math.cos(lon)) * 100) / 100
  const conditions = ['Clear', 'Clouds', 'Rain', 'Snow', 'Drizzle', 'Mist']
  const main = conditions[Math.abs(Math.round(lat * 7 + lon * 3)) % conditions.length]
  return { celsius, main }
}

export function oneCallBody(lat, lon, celsius, main) {
  return JSON.stringify({
    lat,
    lon,
    timezone: 'UTC',
    timezone_offset: 0,
    current: { dt: Math.floor(Date.now() / 1000), temp: celsius, feels_like: celsius, weather: [{ id: 800, main, description: main.toLowerCase() }] },
  })
}

/**
 * A full One Call 3.0 answer (its documented shape, nothing excluded): `current` with details,
 * `minutely` (61 points, rain from minute `rainInMin` on, none when `rainInMin` is null),
 * `hourly` (48), `daily` (8) and `alerts` (`alert: false` for none). `now` (ms) is when the
 * answer is made; the hours start at the start of its hour. Hour 1 lacks `wind_gust` and
 * `rain`, as real answers leave out what does not apply.
 */
export function oneCallForecastBody(lat, lon, celsius, main, { now = Date.now(), rainInMin = 40, alert = true, timezoneOffset = 0 } = {}) {
  const t0 = Math.floor(now / 3_600_000) * 3_600
  const nowS = Math.floor(now / 1000)
  const weather = (m) => [{ id: 500, main: m, description: m === 'Rain' ? 'light rain' : m.toLowerCase(), icon: '10d' }]
  const hourly = Array.from({ length: 48 }, (_, i) => ({
    dt: t0 + i * 3600, temp: Math.round((celsius + Math.sin(i / 4) * 3) * 100) / 100, feels_like: celsius - 1, pressure: 1012, humidity: 80,
    dew_point: 2, uvi: 0, clouds: 90, visibility: 10000, wind_speed: 4.5, wind_deg: 230,
    ...(i === 1 ? {} : { wind_gust: 9.1, rain: { '1h': 0.4 } }),
    weather: weather(i % 6 < 3 ? main : 'Rain'), pop: (i % 10) / 10,
  }))
  const localMidnight = Math.floor((t0 + timezoneOffset) / 86_400) * 86_400 - timezoneOffset
  const daily = Array.from({ length: 8 }, (_, i) => ({
    dt: localMidnight + i * 86_400 + 12 * 3600, sunrise: localMidnight + i * 86_400 + 7 * 3600, sunset: localMidnight + i * 86_400 + 17 * 3600,
    summary: 'Expect rain', temp: { day: celsius, min: celsius - 4 + i * 0.5, max: celsius + 3 + i * 0.5, night: celsius - 3, eve: celsius, morn: celsius - 2 },
    pressure: 1010, humidity: 80, wind_speed: 5, wind_deg: 220, weather: weather(i % 2 ? 'Clouds' : 'Rain'), clouds: 100, pop: 0.8,
    ...(i === 2 ? {} : { rain: 2.5 }), uvi: 1.1,
  }))
  const start = Math.floor(nowS / 60) * 60
  const minutely = rainInMin === null ? undefined : Array.from({ length: 61 }, (_, i) => ({ dt: start + i * 60, precipitation: i >= rainInMin ? 1.8 : 0 }))
  const alerts = alert
    ? [{ sender_name: 'NWS Philadelphia - Mount Holly', event: 'Wind Advisory', start: t0 + 3600, end: t0 + 12 * 3600, description: '* WHAT...Southwest winds 20 to 30 mph with gusts up to 50 mph.\n* WHERE...Coastal areas.', tags: ['Wind'] }]
    : undefined
  return JSON.stringify({
    lat, lon, timezone: 'UTC', timezone_offset: timezoneOffset,
    current: {
      dt: nowS, sunrise: t0 - 20_000, sunset: t0 + 10_000, temp: celsius, feels_like: celsius - 1.5, pressure: 1013, humidity: 87, dew_point: 2.1,
      uvi: 0.2, clouds: 75, visibility: 8000, wind_speed: 5.7, wind_deg: 240, weather: weather(main),
    },
    ...(minutely ? { minutely } : {}), hourly, daily, ...(alerts ? { alerts } : {}),
  })
}

/** WMO codes (Open-Meteo) and MET Norway symbols for OpenWeather's conditions. */
const WMO = { Clear: 0, Clouds: 3, Fog: 45, Mist: 45, Drizzle: 53, Rain: 61, Snow: 71, Thunderstorm: 95 }
const SYMBOL = { Clear: 'clearsky_day', Clouds: 'cloudy', Fog: 'fog', Mist: 'fog', Drizzle: 'lightrain', Rain: 'rain', Snow: 'snow', Thunderstorm: 'rainandthunder' }

export function openMeteoBody(celsius, main) {
  return JSON.stringify({ latitude: 0, longitude: 0, current_units: { temperature_2m: '°C' }, current: { time: '2026-11-22T10:00', interval: 900, temperature_2m: celsius, weather_code: WMO[main] ?? 3 } })
}

export function metNorwayBody(celsius, main) {
  const data = { instant: { details: { air_temperature: celsius } }, next_1_hours: { summary: { symbol_code: SYMBOL[main] ?? 'cloudy' } } }
  return JSON.stringify({ type: 'Feature', properties: { meta: { units: { air_temperature: 'celsius' } }, timeseries: [{ time: '2026-11-22T10:00:00Z', data }] } })
}

/** A weather body in the format of the provider `q` asked. */
export function bodyFor(q, celsius, main) {
  if (q.provider === 'open-meteo') return openMeteoBody(celsius, main)
  if (q.provider === 'met-norway') return metNorwayBody(celsius, main)
  return oneCallBody(q.lat, q.lon, celsius, main)
}

// Behaviours: each is `(req, res, query) => void` and owns the response. Replies (below) are
// turned into these; `fake.behave(fn)` takes one directly.
export const answer = {
  /** The default: real-looking weather for the asked coordinates. */
  weather: (req, res, q) => {
    const { celsius, main } = weatherAt(q.lat, q.lon)
    json(res, 200, bodyFor(q, celsius, main))
  },
  fixed: (celsius, main = 'Clouds') => (req, res, q) => json(res, 200, bodyFor(q, celsius, main)),
  /** One Call answers with every product (see `oneCallForecastBody`), made at `now()`. */
  forecast: (celsius, main = 'Clouds', options = {}) => (req, res, q) =>
    json(res, 200, oneCallForecastBody(q.lat, q.lon, celsius, main, { ...options, now: options.now?.() ?? Date.now() })),
  status: (status, body = JSON.stringify({ cod: status, message: 'injected failure' }), headers = {}) => (req, res) =>
    json(res, status, body, headers),
  rateLimited: (retryAfter) => (req, res) =>
    json(res, 429, JSON.stringify({ cod: 429, message: 'Your account is temporarily blocked' }), retryAfter === undefined ? {} : { 'Retry-After': String(retryAfter) }),
  delayed: (ms, then = answer.weather) => (req, res, q) => {
    const timer = setTimeout(() => then(req, res, q), ms)
    res.on('close', () => clearTimeout(timer))
  },
  /** Never answers (the socket stays open until the server closes). */
  hang: () => {},
  resetMidBody: (req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': '4000' })
    res.write('{"current":{"te')
    setTimeout(() => res.socket.destroy(), 5)
  },
  garbage: (req, res) => json(res, 200, '<html>not json</html>'),
  noTemp: (req, res, q) => json(res, 200, bodyFor(q, null, 'Clear')),
  huge: (bytes) => (req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json' }) // no Content-Length: chunked
    const chunk = Buffer.alloc(64 * 1024, 0x20)
    let sent = 0
    const pump = () => {
      while (sent < bytes) {
        sent += chunk.length
        if (!res.write(chunk)) return res.once('drain', pump)
      }
      res.end()
    }
    pump()
  },
}

function json(res, status, body, headers = {}) {
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), ...headers })
  res.end(body)
}

const PATHS = {
  '/data/3.0/onecall': 'openweather',
  '/v1/forecast': 'open-meteo',
  '/weatherapi/locationforecast/2.0/compact': 'met-norway',
}

/** What OpenWeather says with each status (its own wording where known). */
const MESSAGES = {
  400: 'wrong latitude',
  401: 'Invalid API key. Please see https://openweathermap.org/faq#error401 for more info.',
  404: 'Internal error',
  429: 'Your account is temporarily blocked due to exceeding of requests limitation of your subscription type.',
}

const MALFORMED = { 'not-json': answer.garbage, 'no-temp': answer.noTemp, truncated: answer.resetMidBody }

function invalid(message) {
  return Object.assign(new TypeError(`weather-cache/testing: ${message}`), { code: 'ERR_INVALID_ARG_VALUE' })
}

/** The behaviour a reply describes; throws a TypeError naming what is wrong with it. */
function behaviourOf(reply) {
  if (reply === null || typeof reply !== 'object') throw invalid(`a reply is an object, got ${reply === null ? 'null' : typeof reply}`)
  const { delayMs } = reply
  if (delayMs !== undefined && !(Number.isFinite(delayMs) && delayMs >= 0)) throw invalid(`delayMs must be a number >= 0, got ${delayMs}`)
  let behaviour
  if ('status' in reply) {
    const { status, retryAfter, message } = reply
    if (!(Number.isInteger(status) && status >= 200 && status <= 599)) throw invalid(`status must be an HTTP status, got ${status}`)
    const text = message ?? MESSAGES[status] ?? (status >= 500 ? 'Internal server error' : 'error')
    const headers = retryAfter === undefined ? {} : { 'Retry-After': String(retryAfter) }
    // Open-Meteo and MET Norway have their own error shapes; OpenWeather's `cod` is a number.
    behaviour = (req, res, q) =>
      json(res, status, q.provider === 'openweather' ? JSON.stringify({ cod: status, message: text }) : JSON.stringify({ error: true, reason: text }), headers)
  } else if ('malformed' in reply) {
    behaviour = MALFORMED[reply.malformed]
    if (!behaviour) throw invalid(`malformed must be one of ${Object.keys(MALFORMED).join(', ')}, got ${reply.malformed}`)
  } else if ('hang' in reply) {
    behaviour = answer.hang
  } else if ('tempC' in reply) {
    const { tempC, condition = 'Clear' } = reply
    if (!Number.isFinite(tempC)) throw invalid(`tempC must be a finite number, got ${tempC}`)
    if (typeof condition !== 'string' || condition === '') throw invalid(`condition must be a non-empty string, got ${condition}`)
    behaviour = answer.fixed(tempC, condition)
  } else {
    throw invalid('a reply has tempC, status, malformed or hang')
  }
  return delayMs ? answer.delayed(delayMs, behaviour) : behaviour
}

function haversineKm(lat1, lon1, lat2, lon2) {
  const rad = Math.PI / 180
  const a = Math.sin(((lat2 - lat1) * rad) / 2) ** 2 + Math.cos(lat1 * rad) * Math.cos(lat2 * rad) * Math.sin(((lon2 - lon1) * rad) / 2) ** 2
  return 2 * 6371.0088 * Math.asin(Math.min(1, Math.sqrt(a)))
}

/**
 * Starts a fake OpenWeather on an ephemeral port of `options.host` (127.0.0.1). Until told
 * otherwise it answers every place with deterministic weather (`weatherAt`), and a wrong key
 * with 401.
 */
export async function startFakeOpenWeather(options = {}) {
  const { apiKey = API_KEY, host = '127.0.0.1', latencyMs = 0, reply } = options
  if (typeof apiKey !== 'string' || apiKey === '') throw invalid('apiKey must be a non-empty string')
  const calls = []
  const sockets = new Set()
  /** { lat, lon, withinKm, behaviour } */
  let places = []
  let fallback = reply === undefined ? answer.weather : behaviourOf(reply)
  let latency = 0
  /** `behave(fn)`: answers everything itself until `behave(null)` or `reset()`. */
  let override = null

  const route = (q) => {
    let best = null
    for (const place of places) {
      const km = haversineKm(place.lat, place.lon, q.lat, q.lon)
      if (km <= place.withinKm && (best === null || km < best.km)) best = { km, place }
    }
    return best ? best.place.behaviour : fallback
  }

  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1')
    const provider = PATHS[url.pathname]
    const param = (short, long) => url.searchParams.get(short) ?? url.searchParams.get(long)
    const q = {
      at: Date.now(),
      path: url.pathname,
      provider,
      lat: Number(param('lat', 'latitude')),
      lon: Number(param('lon', 'longitude')),
      rawLat: param('lat', 'latitude'),
      rawLon: param('lon', 'longitude'),
      exclude: url.searchParams.get('exclude'),
      units: url.searchParams.get('units'),
      appid: url.searchParams.get('appid'),
      current: url.searchParams.get('current'),
      userAgent: req.headers['user-agent'],
      ifModifiedSince: req.headers['if-modified-since'],
      status: undefined,
    }
    calls.push(q)
    // The status answered, as its head goes out (an answer cut short after it has one too).
    const writeHead = res.writeHead
    res.writeHead = function (status, ...rest) {
      q.status = status
      return writeHead.call(this, status, ...rest)
    }
    if (provider === undefined) return json(res, 404, JSON.stringify({ cod: 404, message: 'not found' }))
    if (provider === 'openweather' && q.appid !== apiKey) return json(res, 401, JSON.stringify({ cod: 401, message: MESSAGES[401] }))
    // MET Norway refuses anonymous clients.
    if (provider === 'met-norway' && !q.userAgent) return json(res, 403, JSON.stringify({ error: 'no User-Agent' }))
    const behaviour = override ?? route(q)
    if (latency > 0) answer.delayed(latency, behaviour)(req, res, q)
    else behaviour(req, res, q)
  })
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, host, resolve)
  })
  const { port } = server.address()
  const fake = {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    apiKey,
    /** Every request, oldest first (`requests` is the same array). */
    calls,
    requests: calls,
    get count() {
      return calls.length
    },
    /** The reply for every place no `setPlace` covers. */
    setDefault(reply) {
      fallback = behaviourOf(reply)
      return fake
    },
    /** The reply for requests within `withinKm` (default 1) of (lat, lon); the nearest place wins. */
    setPlace(lat, lon, reply, { withinKm = 1 } = {}) {
      if (!Number.isFinite(lat) || lat < -90 || lat > 90) throw invalid(`lat must be a number in [-90, 90], got ${lat}`)
      if (!Number.isFinite(lon) || lon < -180 || lon > 180) throw invalid(`lon must be a number in [-180, 180], got ${lon}`)
      if (!(Number.isFinite(withinKm) && withinKm >= 0)) throw invalid(`withinKm must be a number >= 0, got ${withinKm}`)
      const behaviour = behaviourOf(reply)
      places = places.filter((p) => p.lat !== lat || p.lon !== lon).concat({ lat, lon, withinKm, behaviour })
      return fake
    },
    /** Added to every answer (on top of a reply's own `delayMs`). */
    setLatency(ms) {
      if (!(Number.isFinite(ms) && ms >= 0)) throw invalid(`latency must be a number >= 0, got ${ms}`)
      latency = ms
      return fake
    },
    /** Low level: `fn(req, res, call)` answers every request (key checks aside) until `behave(null)`. */
    behave(fn) {
      if (fn !== null && typeof fn !== 'function') throw invalid('behave takes a function or null')
      override = fn
      return fake
    },
    /** Back to the start: no places, deterministic weather everywhere, no latency (the call log stays). */
    reset() {
      places = []
      fallback = reply === undefined ? answer.weather : behaviourOf(reply)
      latency = latencyMs
      override = null
      return fake
    },
    /** Stops listening and cuts open connections (a request left hanging ends with them). */
    async close() {
      for (const socket of sockets) socket.destroy()
      await new Promise((resolve) => server.close(() => resolve()))
    },
  }
  fake.setLatency(latencyMs)
  return fake
}

/** The package suite's form: a fake whose every answer comes from `behaviour`. */
export async function startUpstream(behaviour = answer.weather) {
  const fake = await startFakeOpenWeather()
  if (behaviour !== answer.weather) fake.behave(behaviour)
  return fake
}

/** A port nothing listens on: a `baseUrl` for an OpenWeather that cannot be reached. */
export async function closedPort() {
  const server = http.createServer()
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address()
  await new Promise((resolve) => server.close(resolve))
  return port
}
