// `weather-cache serve`: the drone proxy. A small HTTP server (node:http) in front of one
// WeatherService, so that a fleet asks it instead of the rate-limited upstream.
import http from 'node:http'

import { WeatherService } from '../main.js'
import { UsageError, parseFlags } from './cli-args.mjs'

export const SERVE_HELP = `Usage: weather-cache serve [options]

A weather proxy for drone fleets: every drone asks this server, the cache asks OpenWeather.

  GET /v1/weather?lat=..&lon=..[&user=..][&units=metric|imperial]
      200 { condition, tempC, tempF, temp, units, source, fetchedAt, ageMs }
      400 { error: { code, message } } for bad parameters
      503 when there is nothing to serve (with Retry-After when rate limited)
  GET /metrics   Prometheus text (weather_cache_*)
  GET /healthz   200 ok

Options:
  --port <n>            port to listen on (default 8080; 0 picks a free one)
  --host <addr>         address to bind (default 127.0.0.1)
  --upstream <url>      OpenWeather base URL (default https://api.openweathermap.org,
                        or OPEN_WEATHER_BASE_URL)
  --api-key <key>       OpenWeather API key (default: OPEN_WEATHER_API_KEY)
  --preset <name>       resilient (default) or minimal
  --grid-deg <deg>      grid cell height (default 0.045)
  --proximity-km <km>   reuse radius (default 5)
  --fresh-ttl <ms>      how long an answer stays fresh (default 600000)
  --redis <url>         share the cache, leases, 429s and budgets with other instances
                        through Redis (redis:// or rediss://; default WEATHER_CACHE_REDIS_URL)
  --budget-per-minute <n>  at most n upstream calls a minute (across instances with --redis)
  --budget-per-day <n>     at most n upstream calls a UTC day (likewise)
  -h, --help            this text

SIGINT / SIGTERM stop accepting connections, let requests in flight finish, close the cache
and exit 0.`

const FLAGS = {
  port: { type: 'int', min: 0, max: 65535 },
  host: { type: 'string' },
  upstream: { type: 'string' },
  'api-key': { type: 'string' },
  preset: { type: 'string', choices: ['resilient', 'minimal'] },
  'grid-deg': { type: 'number' },
  'proximity-km': { type: 'number' },
  'fresh-ttl': { type: 'int', min: 0 },
  redis: { type: 'string' },
  'budget-per-minute': { type: 'int', min: 1 },
  'budget-per-day': { type: 'int', min: 1 },
}

/** Longest accepted query string. */
const MAX_QUERY_BYTES = 2048
/** Codes that mean the request itself was wrong. */
const BAD_REQUEST = new Set(['ERR_INVALID_ARG_TYPE', 'ERR_INVALID_ARG_VALUE', 'ERR_OUT_OF_RANGE'])

/** Parses serve's flags into WeatherService options plus where to listen. */
export function serveOptions(argv, env = process.env) {
  const { values, help } = parseFlags(argv, FLAGS)
  if (help) return { help: true }
  const service = {}
  const apiKey = values['api-key'] ?? env.OPEN_WEATHER_API_KEY
  if (apiKey) service.apiKey = apiKey
  if (values.upstream) service.baseUrl = values.upstream
  if (values.preset) service.preset = values.preset
  if (values['grid-deg'] !== undefined) service.gridDeg = values['grid-deg']
  if (values['proximity-km'] !== undefined) service.proximityKm = values['proximity-km']
  if (values['fresh-ttl'] !== undefined) service.freshTtlMs = values['fresh-ttl']
  const redis = values.redis ?? env.WEATHER_CACHE_REDIS_URL
  if (redis) service.redis = redis
  const budget = {}
  if (values['budget-per-minute'] !== undefined) budget.perMinute = values['budget-per-minute']
  if (values['budget-per-day'] !== undefined) budget.perDay = values['budget-per-day']
  if (Object.keys(budget).length > 0) service.budget = budget
  return { help: false, port: values.port ?? 8080, host: values.host ?? '127.0.0.1', service }
}

/** Starts the proxy. Resolves once listening, to `{ url, server, service, shutdown() }`. */
export async function startServer({ port, host, service: serviceOptions }) {
  let service
  try {
    service = new WeatherService(serviceOptions)
  } catch (error) {
    throw new UsageError(error.message)
  }
  const server = http.createServer((req, res) => {
    handle(service, req, res).catch((error) => {
      // Never crash on a request: anything unexpected is a 500.
      if (!res.headersSent) send(res, 500, { error: { code: 'ERR_INTERNAL', message: String(error?.message ?? error) } })
      else res.destroy()
    })
  })
  server.requestTimeout = 30_000
  server.headersTimeout = 10_000
  server.keepAliveTimeout = 5_000
  server.maxHeadersCount = 50
  await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, resolve)
  })
  const address = server.address()
  const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address
  let closing = null
  return {
    url: `http://${shown}:${address.port}`,
    server,
    service,
    /** Stops accepting, waits for requests in flight (at most `graceMs`), closes the cache. */
    shutdown(graceMs = 10_000) {
      closing ??= new Promise((resolve) => {
        const timer = setTimeout(() => server.closeAllConnections(), graceMs)
        timer.unref()
        server.close(() => {
          clearTimeout(timer)
          service.close()
          resolve()
        })
        server.closeIdleConnections()
      })
      return closing
    },
  }
}

async function handle(service, req, res) {
  const queryAt = req.url.indexOf('?')
  if (queryAt >= 0 && Buffer.byteLength(req.url) - queryAt - 1 > MAX_QUERY_BYTES) {
    return send(res, 414, { error: { code: 'ERR_QUERY_TOO_LONG', message: `query strings are limited to ${MAX_QUERY_BYTES} bytes` } })
  }
  let url
  try {
    url = new URL(req.url, 'http://localhost')
  } catch {
    return send(res, 400, { error: { code: 'ERR_INVALID_URL', message: 'the request URL cannot be parsed' } })
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    return send(res, 405, { error: { code: 'ERR_METHOD_NOT_ALLOWED', message: 'only GET is supported' } }, { Allow: 'GET, HEAD' })
  }
  switch (url.pathname) {
    case '/healthz':
      return sendText(res, 200, 'ok\n')
    case '/metrics':
      return sendText(res, 200, service.metricsText(), 'text/plain; version=0.0.4; charset=utf-8')
    case '/v1/weather':
      return weather(service, url.searchParams, res)
    default:
      return send(res, 404, { error: { code: 'ERR_NOT_FOUND', message: `no route for ${url.pathname}` } })
  }
}

async function weather(service, params, res) {
  const badRequest = (code, message) => send(res, 400, { error: { code, message } })
  const coordinates = {}
  for (const name of ['lat', 'lon']) {
    const raw = params.get(name)
    if (raw === null) return badRequest('ERR_INVALID_ARG_TYPE', `The "${name}" query parameter is required`)
    const value = /^\s*[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?\s*$/i.test(raw) ? Number(raw) : NaN
    if (!Number.isFinite(value)) return badRequest('ERR_INVALID_ARG_VALUE', `The "${name}" query parameter must be a number. Received '${raw.slice(0, 32)}'`)
    coordinates[name] = value
  }
  const units = params.get('units') ?? 'metric'
  if (units !== 'metric' && units !== 'imperial') {
    return badRequest('ERR_INVALID_ARG_VALUE', `The "units" query parameter must be 'metric' or 'imperial'. Received '${units.slice(0, 32)}'`)
  }
  const user = params.get('user') ?? 'anonymous'
  let forecast
  try {
    forecast = await service.getForecast(null, user, coordinates.lat, coordinates.lon)
  } catch (error) {
    if (BAD_REQUEST.has(error.code)) return badRequest(error.code, error.message)
    const headers = error.code === 'ERR_RATE_LIMITED' ? { 'Retry-After': String(Math.max(1, Math.ceil(error.retryAfterMs / 1000))) } : {}
    return send(res, 503, { error: { code: error.code ?? 'ERR_INTERNAL', message: error.message } }, headers)
  }
  const { summary, meta } = forecast
  send(res, 200, {
    condition: summary.condition,
    tempC: summary.tempC,
    tempF: summary.tempF,
    temp: units === 'metric' ? summary.tempC : summary.tempF,
    units,
    source: meta.source,
    fetchedAt: meta.fetchedAt,
    ageMs: meta.ageMs,
  })
}

function send(res, status, body, headers = {}) {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store', ...headers })
  res.end(res.req.method === 'HEAD' ? undefined : text)
}

function sendText(res, status, text, type = 'text/plain; charset=utf-8') {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(text) })
  res.end(res.req.method === 'HEAD' ? undefined : text)
}
