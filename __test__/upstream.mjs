// A loopback HTTP server that speaks OpenWeather One Call 3.0, Open-Meteo and MET Norway's
// Locationforecast (each at its own path) and counts what it is asked. Tests swap its behaviour
// per request to inject 429s, 5xx, slowness, resets and garbage; the behaviours that answer
// with weather speak the asked provider's format.
import http from 'node:http'

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

// Behaviours: each is `(req, res, query) => void` and owns the response.
export const answer = {
  /** The default: real-looking weather for the asked coordinates. */
  weather: (req, res, q) => {
    const { celsius, main } = weatherAt(q.lat, q.lon)
    json(res, 200, bodyFor(q, celsius, main))
  },
  fixed: (celsius, main = 'Clouds') => (req, res, q) => json(res, 200, bodyFor(q, celsius, main)),
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

/**
 * Starts the server on an ephemeral 127.0.0.1 port. `behaviour` answers each request; it can be
 * swapped at any time with `upstream.behave(fn)`. Requests with a wrong key get 401.
 */
export async function startUpstream(behaviour = answer.weather) {
  const requests = []
  const sockets = new Set()
  let current = behaviour
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1')
    const provider = PATHS[url.pathname]
    const param = (short, long) => url.searchParams.get(short) ?? url.searchParams.get(long)
    const q = {
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
    }
    requests.push(q)
    if (provider === undefined) return json(res, 404, JSON.stringify({ cod: 404, message: 'not found' }))
    if (provider === 'openweather' && q.appid !== API_KEY) return json(res, 401, JSON.stringify({ cod: 401, message: 'Invalid API key' }))
    // MET Norway refuses anonymous clients.
    if (provider === 'met-norway' && !q.userAgent) return json(res, 403, JSON.stringify({ error: 'no User-Agent' }))
    current(req, res, q)
  })
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address()
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    get count() {
      return requests.length
    },
    behave(fn) {
      current = fn
    },
    async close() {
      for (const socket of sockets) socket.destroy()
      await new Promise((resolve) => server.close(resolve))
    },
  }
}

/** A port nothing listens on. */
export async function closedPort() {
  const server = http.createServer()
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address()
  await new Promise((resolve) => server.close(resolve))
  return port
}
