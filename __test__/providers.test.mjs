// Several providers (issue 14): failover within one flight, the providers' own protocols on
// loopback fakes, a custom JS fetcher, and the option's errors. The fault suite runs against
// each provider in faults.test.mjs.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

import { WeatherService } from '../main.js'
import { providerAt, recordingLogger, until } from './helpers.mjs'
import { API_KEY, answer, metNorwayBody, startUpstream } from './upstream.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))

/** A service on the manual clock over the given providers; closed (and upstreams too) after `fn`. */
async function withProviders(providers, fn, options = {}) {
  const service = new WeatherService({ apiKey: API_KEY, clock: 'manual', jitterRatio: 0, providers, ...options })
  try {
    return await fn(service)
  } finally {
    service.close()
  }
}

test('a 429 from OpenWeather: the same flight is answered by Open-Meteo, for 100 waiters', async () => {
  const ow = await startUpstream(answer.delayed(30, answer.rateLimited(60)))
  const om = await startUpstream(answer.fixed(7.4, 'Rain'))
  try {
    await withProviders([providerAt('openweather', ow.url), providerAt('open-meteo', om.url)], async (service) => {
      const forecasts = Array.from({ length: 100 }, (_, i) => service.getForecast(null, `drone-${i}`, 48.85 + i * 1e-4, 2.35))
      const results = await Promise.all(forecasts)
      assert.ok(results.every((r) => r.meta.provider === 'open-meteo' && r.summary.condition === 'Rain' && r.summary.tempC === 7))
      assert.equal(results.filter((r) => r.meta.source === 'network').length, 100)
      assert.deepEqual([ow.count, om.count], [1, 1])
      assert.equal(om.requests[0].provider, 'open-meteo')
      assert.match(om.requests[0].current, /^temperature_2m,weather_code,/)
      const stats = service.stats()
      assert.deepEqual([stats.misses, stats.coalesced, stats.fetches, stats.rateLimited], [1, 99, 1, 1])
      const metrics = service.metricsText()
      assert.match(metrics, /^weather_cache_upstream_requests_total\{provider="openweather"\} 1$/m)
      assert.match(metrics, /^weather_cache_upstream_requests_total\{provider="open-meteo"\} 1$/m)
      // OpenWeather cools down for its Retry-After: elsewhere, Open-Meteo is asked at once.
      assert.equal((await service.getForecast(null, 'u', -33.9, 151.2)).meta.provider, 'open-meteo')
      assert.deepEqual([ow.count, om.count], [1, 2])
    })
  } finally {
    await ow.close()
    await om.close()
  }
})

test('a provider that needs a key and has none is skipped, not asked; with none left the error says so', async () => {
  const ow = await startUpstream(answer.fixed(20, 'Clear'))
  const om = await startUpstream(answer.fixed(7.4, 'Rain'))
  // No key from the environment either (read at construction).
  const saved = process.env.OPEN_WEATHER_API_KEY
  delete process.env.OPEN_WEATHER_API_KEY
  try {
    const keyless = [{ name: 'openweather', baseUrl: ow.url }, providerAt('open-meteo', om.url)]
    await withProviders(keyless, async (service) => {
      const forecast = await service.getForecast(null, 'u', 10, 10)
      assert.deepEqual([forecast.meta.provider, ow.count, om.count], ['open-meteo', 0, 1])
    }, { apiKey: undefined })
    await withProviders([{ name: 'openweather', baseUrl: ow.url }], async (service) => {
      await assert.rejects(service.getForecast(null, 'u', 10, 10), { code: 'ERR_NO_API_KEY' })
      assert.equal(ow.count, 0)
    }, { apiKey: undefined })
  } finally {
    if (saved !== undefined) process.env.OPEN_WEATHER_API_KEY = saved
    await ow.close()
    await om.close()
  }
})

test('OpenWeather down and Open-Meteo answering 400: the request gets the error, with Open-Meteo\'s reason', async () => {
  const ow = await startUpstream(answer.status(503))
  const om = await startUpstream(answer.status(400, JSON.stringify({ error: true, reason: 'Latitude must be in range of -90 to 90°.' })))
  try {
    await withProviders([providerAt('openweather', ow.url), providerAt('open-meteo', om.url)], async (service) => {
      await assert.rejects(service.getForecast(null, 'u', 10, 10), { code: 'ERR_UPSTREAM_STATUS' })
      assert.equal(await service.getWeather(null, 'v', 10.001, 10), null, 'inside both areas\' cooldowns')
      assert.deepEqual([ow.count, om.count], [1, 1])
    })
    // Open-Meteo's own error says why: its reason is in the message.
    await withProviders([providerAt('open-meteo', om.url)], async (service) => {
      await assert.rejects(service.getForecast(null, 'u', 10, 10), {
        code: 'ERR_UPSTREAM_STATUS',
        message: 'Upstream open-meteo answered HTTP 400: Latitude must be in range of -90 to 90°.',
      })
    })
  } finally {
    await ow.close()
    await om.close()
  }
})

test('MET Norway: refused without a userAgent, its User-Agent sent, Expires honoured, 304 renewing', async () => {
  for (const providers of [['met-norway'], [{ name: 'met-norway' }], [{ name: 'met-norway', userAgent: '  ' }]]) {
    assert.throws(() => new WeatherService({ providers }), { code: 'ERR_INVALID_ARG_VALUE', message: /User-Agent/ })
  }
  const lastModified = 'Sun, 22 Nov 2026 09:55:12 GMT'
  // The server's clock is an hour behind ours: only Expires - Date counts.
  const headersAt = (expiresInS) => {
    const date = Math.floor(Date.now() / 1000) * 1000 - 3_600_000
    return { Date: new Date(date).toUTCString(), Expires: new Date(date + expiresInS * 1000).toUTCString(), 'Last-Modified': lastModified }
  }
  const met = await startUpstream((req, res, q) => {
    const headers = headersAt(1_800)
    if (q.ifModifiedSince === lastModified) return res.writeHead(304, headers).end()
    const body = metNorwayBody(-3.2, 'Snow')
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), ...headers }).end(body)
  })
  const userAgent = 'acme-dashboard/2.1 ops@acme.example'
  try {
    await withProviders([{ name: 'met-norway', userAgent, baseUrl: met.url }], async (service) => {
      const first = await service.getForecast(null, 'u', 59.91273, 10.74609)
      assert.deepEqual([first.meta.provider, first.summary.condition, first.summary.tempC], ['met-norway', 'Snow', -3])
      assert.deepEqual([met.requests[0].userAgent, met.requests[0].rawLat, met.requests[0].rawLon], [userAgent, '59.91', '10.75'])
      assert.equal(met.requests[0].ifModifiedSince, undefined)
      // 20 minutes on: past the 10-minute TTL but before Expires: fresh, even when forced.
      service.advanceTime(20 * 60_000)
      const forced = await service.getForecast(null, 'u', 59.91273, 10.74609, { forceRefresh: true })
      assert.deepEqual([forced.meta.source, met.count], ['cache', 1])
      // Past Expires: a conditional request; the 304 renews the entry for another 30 minutes.
      service.advanceTime(11 * 60_000)
      const renewed = await service.getForecast(null, 'u', 59.91273, 10.74609, { forceRefresh: true })
      assert.deepEqual([renewed.meta.source, renewed.summary.tempC, renewed.meta.ageMs], ['network', -3, 0])
      assert.deepEqual([met.count, met.requests[1].ifModifiedSince], [2, lastModified])
      service.advanceTime(29 * 60_000)
      assert.equal((await service.getForecast(null, 'u', 59.91273, 10.74609)).meta.source, 'cache')
      assert.equal(met.count, 2)
    })
  } finally {
    await met.close()
  }
})

test('MET Norway answering 203: the answer is used, and a warn event says the product is deprecated', async () => {
  const met = await startUpstream((req, res) => {
    const body = metNorwayBody(12, 'Clouds')
    res.writeHead(203, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) }).end(body)
  })
  const { logger, records } = recordingLogger()
  try {
    await withProviders([providerAt('met-norway', met.url)], async (service) => {
      assert.equal((await service.getWeather({ logger }, 'u', 60, 11)).condition, 'Clouds')
      const warning = records.find((r) => r.msg === 'weather.provider.warning')
      assert.equal(warning?.level, 'warn')
      assert.deepEqual([warning.obj.provider, /deprecated/.test(warning.obj.message)], ['met-norway', true])
    })
  } finally {
    await met.close()
  }
})

test('a custom fetcher: called with the rounded coordinates and an AbortSignal, its answer cached', async () => {
  const calls = []
  const station = {
    name: 'roof-station',
    fetch: async (lat, lon, signal) => {
      calls.push({ lat, lon, signal })
      return { celsius: 18.6, condition: 'Clear' }
    },
  }
  await withProviders([station], async (service) => {
    const first = await service.getForecast(null, 'u', 48.85661, 2.35222)
    assert.deepEqual([first.meta.provider, first.summary.condition, first.summary.tempC, first.summary.tempF], ['roof-station', 'Clear', 19, 65])
    assert.deepEqual([calls[0].lat, calls[0].lon], [48.86, 2.35])
    assert.ok(calls[0].signal instanceof AbortSignal && !calls[0].signal.aborted)
    assert.equal((await service.getForecast(null, 'v', 48.85661, 2.35222)).meta.source, 'cache')
    assert.equal(calls.length, 1)
    assert.match(service.metricsText(), /^weather_cache_upstream_requests_total\{provider="roof-station"\} 1$/m)
  })
})

test('a custom fetcher that throws, rejects or answers nonsense is an invalid response: failover applies', async () => {
  const om = await startUpstream(answer.fixed(3, 'Clouds'))
  const failures = [
    () => {
      throw new Error('sensor offline')
    },
    async () => Promise.reject(new TypeError('bad reading')),
    async () => ({ celsius: Infinity, condition: 'Clear' }),
    async () => ({ celsius: 400, condition: 'Clear' }),
    async () => ({ celsius: 12 }),
    async () => 'sunny',
    async () => null,
  ]
  try {
    for (const [i, fetch] of failures.entries()) {
      await withProviders([{ name: 'station', fetch }], async (service) => {
        await assert.rejects(service.getForecast(null, 'u', 1, 1), { code: 'ERR_UPSTREAM_INVALID_RESPONSE' }, `failure ${i}`)
      })
      await withProviders([{ name: 'station', fetch }, providerAt('open-meteo', om.url)], async (service) => {
        assert.equal((await service.getForecast(null, 'u', 1, 1)).meta.provider, 'open-meteo', `failure ${i}`)
      })
    }
    assert.equal(om.count, failures.length)
  } finally {
    await om.close()
  }
})

test('a custom fetcher hanging past requestTimeoutMs: its signal aborts and the request times out', async () => {
  let signal
  const hanging = { name: 'slow', fetch: (lat, lon, s) => ((signal = s), new Promise(() => {})) }
  await withProviders(
    [hanging],
    async (service) => {
      const started = Date.now()
      await assert.rejects(service.getForecast(null, 'u', 1, 1), { code: 'ERR_UPSTREAM_TIMEOUT' })
      assert.ok(Date.now() - started < 2_000)
      assert.equal(signal.aborted, true)
      assert.equal(signal.reason.name, 'TimeoutError')
    },
    { requestTimeoutMs: 150 },
  )
  // close() aborts a fetch in flight: this fetch's own signal, once it is in flight (the first
  // one's is aborted already).
  signal = undefined
  await withProviders([hanging], async (service) => {
    const pending = service.getWeather(null, 'u', 1, 1)
    await until(() => signal !== undefined, 'the fetch to start')
    assert.equal(signal.aborted, false)
    service.close()
    assert.equal(await pending, null)
    assert.equal(signal.aborted, true)
  })
})

test('a process with a custom fetcher configured exits on its own', async () => {
  const script = `
    const { WeatherService } = require(${JSON.stringify(root + 'main.js')})
    const service = new WeatherService({ providers: [{ name: 'station', fetch: async () => ({ celsius: 20, condition: 'Clear' }) }] })
    service.getWeather(null, 'u', 1, 1).then((w) => console.log(JSON.stringify({ w, at: Date.now() })))
  `
  const child = spawn(process.execPath, ['-e', script], { cwd: root })
  let stdout = ''
  child.stdout.on('data', (d) => (stdout += d))
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
  const code = await new Promise((resolve) => child.on('exit', resolve))
  const exitedAt = Date.now()
  clearTimeout(timer)
  assert.equal(code, 0)
  const { w, at } = JSON.parse(stdout)
  assert.equal(w.condition, 'Clear')
  assert.ok(exitedAt - at < 2_000, `exited ${exitedAt - at} ms after its answer`)
})

test('providers: each mistake gets a clear error naming the entry', () => {
  const cases = [
    [{ providers: 'open-meteo' }, 'ERR_INVALID_ARG_TYPE', /options\.providers/],
    [{ providers: [] }, 'ERR_INVALID_ARG_VALUE', /options\.providers/],
    [{ providers: ['darksky'] }, 'ERR_INVALID_ARG_VALUE', /options\.providers\[0\]/],
    [{ providers: ['open-meteo', 'open-meteo'] }, 'ERR_INVALID_ARG_VALUE', /options\.providers\[1\]/],
    [{ providers: [42] }, 'ERR_INVALID_ARG_TYPE', /options\.providers\[0\]/],
    [{ providers: [{ name: 'x', fetch: 'not a function' }] }, 'ERR_INVALID_ARG_TYPE', /options\.providers\[0\]\.fetch/],
    [{ providers: [{ name: 'openweather', fetch: async () => ({}) }] }, 'ERR_INVALID_ARG_VALUE', /options\.providers\[0\]\.name/],
    [{ providers: [{ fetch: async () => ({}) }] }, 'ERR_INVALID_ARG_TYPE', /options\.providers\[0\]\.name/],
    [{ providers: [{ name: 'open-meteo', baseUrl: 'ftp://x' }] }, 'ERR_INVALID_ARG_VALUE', /options\.providers\[0\]\.baseUrl/],
    [{ providers: [{ name: 'open-meteo', budget: { perMinute: 0 } }] }, 'ERR_OUT_OF_RANGE', /options\.providers\[0\]\.budget\.perMinute/],
  ]
  for (const [options, code, message] of cases) {
    assert.throws(() => new WeatherService(options), (error) => {
      assert.equal(error.code, code, `${JSON.stringify(options)}: ${error.message}`)
      assert.match(error.message, message)
      return true
    })
  }
  // Configured names are never confused, however many a process has seen.
  for (let i = 0; i < 300; i++) new WeatherService({ providers: [{ name: `tenant-${i}`, fetch: async () => ({}) }] }).close()
  const names = new WeatherService({ providers: [{ name: 'station-b', fetch: async () => ({}) }, { name: 'station-c', fetch: async () => ({}) }] })
  assert.deepEqual(names.stats().providers.map((p) => p.name), ['station-b', 'station-c'])
  names.close()
  // Keys never show in errors.
  assert.throws(() => new WeatherService({ providers: [{ name: 'open-meteo', apiKey: 42 }] }), (error) => !error.message.includes('42'))
})

test('without providers nothing changes: apiKey and baseUrl configure OpenWeather alone', async () => {
  const ow = await startUpstream()
  try {
    await withProviders(undefined, async (service) => {
      assert.equal((await service.getForecast(null, 'u', 1, 1)).meta.provider, 'openweather')
      assert.deepEqual(service.stats().providers.map((p) => p.name), ['openweather'])
    }, { baseUrl: ow.url })
    // 'openweather' in a list takes the top-level apiKey and baseUrl.
    await withProviders(['openweather', 'open-meteo'], async (service) => {
      assert.equal((await service.getForecast(null, 'u', 1, 1)).meta.provider, 'openweather')
    }, { baseUrl: ow.url })
  } finally {
    await ow.close()
  }
})
