// A loopback HTTP server that speaks OpenWeather One Call 3.0 and counts what it is asked.
// Tests swap its behaviour per request to inject 429s, 5xx, slowness, resets and garbage.
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

// Behaviours: each is `(req, res, query) => void` and owns the response.
export const answer = {
  /** The default: real-looking weather for the asked coordinates. */
  weather: (req, res, q) => {
    const { celsius, main } = weatherAt(q.lat, q.lon)
    json(res, 200, oneCallBody(q.lat, q.lon, celsius, main))
  },
  fixed: (celsius, main = 'Clouds') => (req, res, q) => json(res, 200, oneCallBody(q.lat, q.lon, celsius, main)),
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
  noTemp: (req, res) => json(res, 200, JSON.stringify({ current: { weather: [{ main: 'Clear' }] } })),
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
    const q = {
      path: url.pathname,
      lat: Number(url.searchParams.get('lat')),
      lon: Number(url.searchParams.get('lon')),
      rawLat: url.searchParams.get('lat'),
      rawLon: url.searchParams.get('lon'),
      exclude: url.searchParams.get('exclude'),
      units: url.searchParams.get('units'),
      appid: url.searchParams.get('appid'),
    }
    requests.push(q)
    if (q.path !== '/data/3.0/onecall') return json(res, 404, JSON.stringify({ cod: 404, message: 'not found' }))
    if (q.appid !== API_KEY) return json(res, 401, JSON.stringify({ cod: 401, message: 'Invalid API key' }))
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
