//! `serve --help`: the routes, every flag, where configuration comes from, and the signals.
//! `{command}` is how the user ran it (`weather-cache serve` or `weather-cache-server`).

pub const HELP: &str = r#"Usage: {command} [options]

A weather proxy for drone fleets: every drone asks this server, the cache asks OpenWeather
(or the providers listed with --providers).

Routes:
  GET /v1/weather?lat=..&lon=..[&user=..][&units=metric|imperial][&include=..]
      200 { condition, tempC, tempF, temp, units, source, fetchedAt, ageMs }, and with
          include=details,hourly,daily,alerts,nextHour those forecast products
          Cache-Control: max-age=<freshness left>, ETag; If-None-Match gets 304;
          a request's Cache-Control: max-age=N (seconds) or no-cache asks for a fresher
          answer, floored by the minimum refresh interval (5 min; none with --preset minimal)
      400 { error: { code, message } } for bad parameters, 401 without a token
      429 with Retry-After past a per-client limit
      503 when there is nothing to serve (with Retry-After when rate limited), 504 on a timeout
  GET /v1/status the status page's numbers (JSON), behind the token
  GET /metrics   Prometheus text (weather_cache_*), behind the token unless --metrics-public
  GET /healthz   200 ok (liveness), always open
  GET /readyz    200 { ready: true }; 503 while draining or when no provider may be asked
  GET /          the status page, behind the token (a form sets its cookie)

Options:
  --config <file>          a TOML file: [service] (the library's options, by their JS names)
                           and [server] (listen options: host, port, tokensFile, apiKeyFile...)
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
                           OPEN_WEATHER_API_KEY); needed unless --providers has a keyless one
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
  --log-level <level>      events written as JSON lines on stderr (pino's shape): trace, debug,
                           info (default), warn, error, fatal or silent
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
                           through Redis (default WEATHER_CACHE_REDIS_URL): redis://host:port,
                           rediss:// (TLS), redis+sentinel://host:port[,host:port]/service
                           (Sentinel), redis+cluster://host:port[,host:port] (Cluster)
  --redis-key-prefix <p>   namespace of the keys in Redis (default weather-cache): separate
                           deployments sharing one Redis need different prefixes
  --when-redis-down <m>    budgets while Redis is unreachable: local (default; each instance
                           enforces the whole budget) or closed (no upstream call)
  --budget-per-minute <n>  at most n OpenWeather calls a minute (across instances with --redis)
  --budget-per-day <n>     at most n OpenWeather calls a UTC day (likewise)
  --providers <list>       providers in order of preference, comma-separated, among
                           openweather, open-meteo, met-norway, nws (default openweather); a fetch
                           fails over to the next on a 429, an error or a timeout. Open-Meteo's
                           free tier is for non-commercial use only (see the README)
  --met-norway-user-agent <ua>  who you are, for MET Norway (required with met-norway)
  --open-meteo-url <url>   Open-Meteo base URL (default https://api.open-meteo.com)
  --met-norway-url <url>   MET Norway base URL (default https://api.met.no)
  --nws-user-agent <ua>    who you are, for the US National Weather Service (required with nws)
  --nws-url <url>          NWS base URL (default https://api.weather.gov)
  --snapshot <file>        warm restarts: save the cache, cooldowns and budget counters to
                           this file, and load it at start (written atomically; a bad file is
                           renamed aside and the cache starts cold)
  --snapshot-interval <ms> how often the snapshot is written (default 60000); also on SIGTERM
  -V, --version            the version
  -h, --help               this text

Configuration, highest first: flags; environment variables (WEATHER_CACHE_<FLAG> for each flag,
e.g. WEATHER_CACHE_PORT, WEATHER_CACHE_TOKEN; but WEATHER_CACHE_REDIS_URL, OPEN_WEATHER_API_KEY
and OPEN_WEATHER_BASE_URL for --redis, --api-key and --upstream); the --config file; the
defaults above.

SIGHUP rereads --tokens-file and the certificate and reopens the access log, without dropping
connections. SIGINT / SIGTERM turn /readyz to 503, wait --drain-delay, stop accepting
connections, close idle ones at once, let requests in flight finish (10 s at most), close the
cache and exit 0."#;
