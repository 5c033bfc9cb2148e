// `weather-cache serve`: the drone proxy. The HTTP server runs inside the addon, on threads of
// its own (WeatherService.listen): this file parses flags, reads secrets, warns about risky
// set-ups and hands over. Files the proxy rereads on SIGHUP (tokens, certificate) are read by
// the proxy itself, so that reloading needs no JS (`WeatherProxy.reload()`).
import { readFileSync } from 'node:fs'
import { isIP } from 'node:net'

import { WeatherService } from '../main.js'
import { UsageError, parseFlags } from './cli-args.mjs'

export const SERVE_HELP = `Usage: weather-cache serve [options]

A weather proxy for drone fleets: every drone asks this server, the cache asks OpenWeather
(or the providers listed with --providers).

  GET /v1/weather?lat=..&lon=..[&user=..][&units=metric|imperial]
      200 { condition, tempC, tempF, temp, units, source, fetchedAt, ageMs }
          Cache-Control: max-age=<freshness left>, ETag; If-None-Match gets 304;
          a request's Cache-Control: max-age=N (seconds) or no-cache asks for a fresher
          answer, floored by the minimum refresh interval (5 min; none with --preset minimal)
      400 { error: { code, message } } for bad parameters, 401 without a token
      429 with Retry-After past a per-client limit
      503 when there is nothing to serve (with Retry-After when rate limited), 504 on a timeout
  GET /metrics   Prometheus text (weather_cache_*), behind the token unless --metrics-public
  GET /healthz   200 ok (liveness), always open
  GET /readyz    200 { ready: true }; 503 while draining or when no provider may be asked
  GET /          the status page, behind the token (a form sets its cookie)

Options:
  --port <n>               port to listen on (default 8080; 0 picks a free one)
  --host <addr>            address to bind (default 127.0.0.1)
  --allowed-host <names>   Host names served besides addresses and localhost (comma-separated,
                           repeatable); others get 421. Needed on loopback for a name; on a
                           public address it limits the names (default: any)
  --tls-cert <path>        serve HTTPS (HTTP/2 and HTTP/1.1): the PEM certificate chain
  --tls-key <path>         ... and its PEM private key (both reread on SIGHUP)
  --upstream <url>         OpenWeather base URL (default https://api.openweathermap.org,
                           or OPEN_WEATHER_BASE_URL)
  --api-key-file <path>    read the OpenWeather API key from a file (default:
                           OPEN_WEATHER_API_KEY)
  --api-key <key>          the key itself (discouraged: other users see argv in ps)
  --tokens-file <path>     clients, one "name token" a line (# comments): each needs
                           "Authorization: Bearer <token>", and is known by its name in the
                           access log and /metrics; reread on SIGHUP
  --token-file <path>      one token (the client "default") from a file (or WEATHER_CACHE_TOKEN)
  --token <token>          the token itself (discouraged, as --api-key)
  --metrics-public         serve /metrics without the token
  --client-rate-limit <n>  requests a second per client (its name, or its address without
                           tokens); past it 429 with Retry-After (default: no limit)
  --client-upstream-limit <n>  upstream calls a minute a client may cause (misses that start
                           a fetch); past it 429 for those, cache hits still answered
  --trust-proxy <cidrs>    peers (load balancers) whose X-Forwarded-For names the client
  --max-connections <n>    connections at once; more get 503 at once (default 10000)
  --max-connections-per-ip <n>  connections from one address (an IPv6 /64) at once (default
                           256; trusted proxies aside)
  --threads <n>            proxy threads (default: the number of cores)
  --access-log <path|->    one JSON line per request (time, request id, client, status,
                           duration, source); a file is reopened on SIGHUP
  --header-timeout <ms>    time for the first request head (and TLS handshake) to arrive
                           (default 10000)
  --idle-timeout <ms>      keep-alive connections idle longer, or that long into their next
                           head, are closed (default 5000)
  --request-timeout <ms>   longest a request may take in all (default 30000)
  --drain-delay <ms>       on SIGTERM, keep serving this long with /readyz at 503 (default 0)
  --preset <name>          resilient (default) or minimal
  --grid-deg <deg>         grid cell height (default 0.045)
  --proximity-km <km>      reuse radius (default 5)
  --fresh-ttl <ms>         how long an answer stays fresh (default 600000)
  --initial-backoff <ms>   first cooldown after a 429 without Retry-After (default 60000)
  --max-backoff <ms>       cap of that cooldown's doubling (default 1800000)
  --error-cooldown <ms>    first cooldown of an area after an upstream error (default 5000)
  --redis <url>            share the cache, leases, 429s and budgets with other instances
                           through Redis (redis:// or rediss://; default WEATHER_CACHE_REDIS_URL)
  --budget-per-minute <n>  at most n OpenWeather calls a minute (across instances with --redis)
  --budget-per-day <n>     at most n OpenWeather calls a UTC day (likewise)
  --providers <list>       providers in order of preference, comma-separated, among
                           openweather, open-meteo, met-norway (default openweather); a fetch
                           fails over to the next on a 429, an error or a timeout. Open-Meteo's
                           free tier is for non-commercial use only (see the README)
  --met-norway-user-agent <ua>  who you are, for MET Norway (required with met-norway)
  --open-meteo-url <url>   Open-Meteo base URL (default https://api.open-meteo.com)
  --met-norway-url <url>   MET Norway base URL (default https://api.met.no)
  --snapshot <file>        warm restarts: save the cache, cooldowns and budget counters to
                           this file, and load it at start (written atomically; a bad file is
                           renamed aside and the cache starts cold)
  --snapshot-interval <ms> how often the snapshot is written (default 60000); also on SIGTERM
  -h, --help               this text

SIGHUP rereads --tokens-file and the certificate and reopens the access log, without dropping
connections. SIGINT / SIGTERM turn /readyz to 503, wait --drain-delay, stop accepting
connections, close idle ones at once, let requests in flight finish (10 s at most), close the
cache and exit 0.`

const FLAGS = {
  port: { type: 'int', min: 0, max: 65535 },
  host: { type: 'string' },
  'allowed-host': { type: 'string', list: true },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  upstream: { type: 'string' },
  'api-key': { type: 'string' },
  'api-key-file': { type: 'string' },
  token: { type: 'string' },
  'token-file': { type: 'string' },
  'tokens-file': { type: 'string' },
  'metrics-public': { type: 'boolean' },
  'client-rate-limit': { type: 'int', min: 1, max: 1_000_000 },
  'client-upstream-limit': { type: 'int', min: 1, max: 1_000_000 },
  'trust-proxy': { type: 'string', list: true },
  'max-connections': { type: 'int', min: 1, max: 1_000_000 },
  'max-connections-per-ip': { type: 'int', min: 1, max: 1_000_000 },
  threads: { type: 'int', min: 1, max: 256 },
  'access-log': { type: 'string' },
  'header-timeout': { type: 'int', min: 1, max: 3_600_000 },
  'idle-timeout': { type: 'int', min: 1, max: 3_600_000 },
  'request-timeout': { type: 'int', min: 1, max: 3_600_000 },
  'drain-delay': { type: 'int', min: 0, max: 3_600_000 },
  preset: { type: 'string', choices: ['resilient', 'minimal'] },
  'grid-deg': { type: 'number' },
  'proximity-km': { type: 'number' },
  'fresh-ttl': { type: 'int', min: 0 },
  'initial-backoff': { type: 'int', min: 0 },
  'max-backoff': { type: 'int', min: 0 },
  'error-cooldown': { type: 'int', min: 0 },
  redis: { type: 'string' },
  'budget-per-minute': { type: 'int', min: 1 },
  'budget-per-day': { type: 'int', min: 1 },
  providers: { type: 'string' },
  'met-norway-user-agent': { type: 'string' },
  'open-meteo-url': { type: 'string' },
  'met-norway-url': { type: 'string' },
  snapshot: { type: 'string' },
  'snapshot-interval': { type: 'int', min: 100, max: 365 * 24 * 3_600_000 },
}

const PROVIDERS = ['openweather', 'open-meteo', 'met-norway']

/** `--providers` and the flags of each provider, as WeatherService's `providers`. */
function providers(values) {
  if (values.providers === undefined) {
    for (const flag of ['met-norway-user-agent', 'open-meteo-url', 'met-norway-url']) {
      if (values[flag] !== undefined) throw new UsageError(`--${flag} goes with --providers`)
    }
    return undefined
  }
  const names = values.providers.split(',').map((name) => name.trim())
  return names.map((name) => {
    if (!PROVIDERS.includes(name)) throw new UsageError(`--providers: unknown provider "${name}" (known: ${PROVIDERS.join(', ')})`)
    if (name === 'open-meteo') return values['open-meteo-url'] ? { name, baseUrl: values['open-meteo-url'] } : name
    if (name === 'met-norway') {
      const userAgent = values['met-norway-user-agent']
      if (!userAgent) throw new UsageError("--providers met-norway needs --met-norway-user-agent (MET Norway's terms: your app and a contact)")
      return { name, userAgent, ...(values['met-norway-url'] ? { baseUrl: values['met-norway-url'] } : {}) }
    }
    return name
  })
}

/** Events of the service on stderr, one JSON line each (info and above). */
const stderrLogger = Object.fromEntries(
  ['trace', 'debug', 'info', 'warn', 'error', 'fatal'].map((level) => [
    level,
    level === 'trace' || level === 'debug' ? () => {} : (fields, msg) => console.error(`weather-cache serve: ${JSON.stringify({ level, msg, ...fields })}`),
  ]),
)

/** A secret from a file: its first line, trimmed. Never echoed in errors. */
function secretFile(flag, path) {
  let text
  try {
    text = readFileSync(path, 'utf8')
  } catch (error) {
    throw new UsageError(`--${flag}: cannot read ${path} (${error.code ?? 'error'})`)
  }
  const secret = text.split(/\r?\n/)[0].trim()
  if (!secret) throw new UsageError(`--${flag}: ${path} is empty`)
  return secret
}

/** An address of the loopback interface (an address, never a name that merely starts with 127.). */
function isLoopback(host) {
  const bare = host.replace(/^\[(.*)\]$/, '$1')
  if (bare === 'localhost') return true
  if (isIP(bare) === 4) return bare.startsWith('127.')
  return isIP(bare) === 6 && (bare === '::1' || /^(0{1,4}:){7}0{0,3}1$/.test(bare))
}

/** A token must never be empty: an empty one would read as "no token" and turn auth off. */
function nonEmpty(what, token) {
  if (token !== undefined && token.trim() === '') throw new UsageError(`${what} is empty (leave it out for no token)`)
  return token
}

/**
 * Parses serve's flags into WeatherService options, the proxy's options, and warnings to print.
 * Reads secret files; never puts a secret into a message.
 */
export function serveOptions(argv, env = process.env) {
  const { values, help } = parseFlags(argv, FLAGS)
  if (help) return { help: true }
  const warnings = []
  const service = {}
  if (values['api-key'] !== undefined && values['api-key-file'] !== undefined) throw new UsageError('--api-key and --api-key-file exclude each other')
  if (values.token !== undefined && values['token-file'] !== undefined) throw new UsageError('--token and --token-file exclude each other')
  if (values['api-key'] !== undefined) warnings.push('--api-key puts the key in argv, where every local user can read it (ps): prefer --api-key-file or OPEN_WEATHER_API_KEY')
  if (values.token !== undefined) warnings.push('--token puts the token in argv, where every local user can read it (ps): prefer --token-file or WEATHER_CACHE_TOKEN')
  const apiKey = values['api-key-file'] !== undefined ? secretFile('api-key-file', values['api-key-file']) : (values['api-key'] ?? env.OPEN_WEATHER_API_KEY)
  if (apiKey) service.apiKey = apiKey
  if (values.upstream) service.baseUrl = values.upstream
  if (values.preset) service.preset = values.preset
  if (values['grid-deg'] !== undefined) service.gridDeg = values['grid-deg']
  if (values['proximity-km'] !== undefined) service.proximityKm = values['proximity-km']
  if (values['fresh-ttl'] !== undefined) service.freshTtlMs = values['fresh-ttl']
  if (values['initial-backoff'] !== undefined) service.initialBackoffMs = values['initial-backoff']
  if (values['max-backoff'] !== undefined) service.maxBackoffMs = values['max-backoff']
  if (values['error-cooldown'] !== undefined) service.errorCooldownMs = values['error-cooldown']
  const redis = values.redis ?? env.WEATHER_CACHE_REDIS_URL
  if (redis) service.redis = redis
  const budget = {}
  if (values['budget-per-minute'] !== undefined) budget.perMinute = values['budget-per-minute']
  if (values['budget-per-day'] !== undefined) budget.perDay = values['budget-per-day']
  if (Object.keys(budget).length > 0) service.budget = budget
  const list = providers(values)
  if (list) service.providers = list
  if (values['snapshot-interval'] !== undefined && values.snapshot === undefined) throw new UsageError('--snapshot-interval goes with --snapshot')
  if (values.snapshot !== undefined) {
    service.snapshot = values['snapshot-interval'] === undefined ? values.snapshot : { path: values.snapshot, intervalMs: values['snapshot-interval'] }
    // What became of the snapshot (restored, rejected, failing) is said on stderr.
    service.logger = stderrLogger
  }

  const host = values.host ?? '127.0.0.1'
  const tokensFile = values['tokens-file']
  if (tokensFile !== undefined && (values.token !== undefined || values['token-file'] !== undefined)) {
    throw new UsageError('--tokens-file excludes --token and --token-file (one token, or a file of named ones)')
  }
  let token
  if (tokensFile === undefined) {
    token = values['token-file'] !== undefined ? secretFile('token-file', values['token-file']) : nonEmpty('--token', values.token) ?? nonEmpty('WEATHER_CACHE_TOKEN', env.WEATHER_CACHE_TOKEN)
  } else if (env.WEATHER_CACHE_TOKEN !== undefined) {
    warnings.push('WEATHER_CACHE_TOKEN is ignored: --tokens-file names the clients')
  }
  if (token === undefined && tokensFile === undefined && !isLoopback(host)) {
    warnings.push(`listening on ${host} without a token: anyone who can reach the port spends the API key's budget (set --tokens-file, --token-file or WEATHER_CACHE_TOKEN)`)
  }
  if ((values['tls-cert'] === undefined) !== (values['tls-key'] === undefined)) throw new UsageError('--tls-cert and --tls-key go together')
  const listen = { host, port: values.port ?? 8080 }
  if (token !== undefined) listen.token = token
  if (tokensFile !== undefined) listen.tokensFile = tokensFile
  if (values['tls-cert'] !== undefined) Object.assign(listen, { tlsCert: values['tls-cert'], tlsKey: values['tls-key'] })
  if (values['allowed-host'] !== undefined) listen.allowedHosts = values['allowed-host']
  if (values['trust-proxy'] !== undefined) listen.trustProxy = values['trust-proxy']
  if (values['metrics-public']) listen.metricsPublic = true
  if (values['client-rate-limit'] !== undefined) listen.clientRateLimit = values['client-rate-limit']
  if (values['client-upstream-limit'] !== undefined) listen.clientUpstreamLimit = values['client-upstream-limit']
  if (values['max-connections'] !== undefined) listen.maxConnections = values['max-connections']
  if (values['max-connections-per-ip'] !== undefined) listen.maxConnectionsPerIp = values['max-connections-per-ip']
  if (values.threads !== undefined) listen.threads = values.threads
  if (values['access-log'] !== undefined) listen.accessLog = values['access-log']
  if (values['header-timeout'] !== undefined) listen.headerTimeoutMs = values['header-timeout']
  if (values['idle-timeout'] !== undefined) listen.idleTimeoutMs = values['idle-timeout']
  if (values['request-timeout'] !== undefined) listen.requestTimeoutMs = values['request-timeout']
  if (values['drain-delay'] !== undefined) listen.drainDelayMs = values['drain-delay']
  return { help: false, service, listen, warnings }
}

/** Starts the proxy. Resolves once listening, to `{ url, service, proxy, shutdown(graceMs) }`. */
export async function startServer({ service: serviceOptions, listen }) {
  let service
  try {
    service = new WeatherService(serviceOptions)
  } catch (error) {
    throw new UsageError(error.message)
  }
  let proxy
  try {
    proxy = await service.listen(listen)
  } catch (error) {
    service.close()
    // Anything about the flags' values (an unusable --host, --access-log, --port) is a usage error.
    if (['EADDRINUSE', 'EACCES', 'EADDRNOTAVAIL', 'ERR_PROXY_LISTEN', 'ERR_PROXY_ACCESS_LOG', 'ERR_PROXY_TOKENS', 'ERR_PROXY_TLS'].includes(error.code) || /^ERR_(INVALID|OUT_OF)/.test(error.code ?? '')) {
      throw new UsageError(error.message)
    }
    throw error
  }
  let closing = null
  return {
    url: proxy.url,
    service,
    proxy,
    /** Rereads the tokens file and certificate, reopens the access log (SIGHUP). */
    reload: () => proxy.reload(),
    /** Drains (`--drain-delay`), stops accepting, lets requests in flight finish (at most `graceMs`), closes the cache. */
    shutdown(graceMs = 10_000) {
      closing ??= proxy.close(graceMs).then(() => service.close())
      return closing
    },
  }
}
