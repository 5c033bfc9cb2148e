// Forecast products (issue 23): details, next hour, hourly, daily and alerts from the same
// upstream answer as the summary, asked for with `getForecast(..., { include })`.
import assert from 'node:assert/strict'
import { test } from 'node:test'

import { WeatherService } from '../main.js'
import { withProxy } from './serve-process.mjs'
import { API_KEY, answer, startUpstream } from './upstream.mjs'

const ALL = ['details', 'hourly', 'daily', 'alerts', 'nextHour']

/** A service on the manual clock over a One Call fake answering with every product. */
async function withForecasts(fn, { options = {}, behaviour } = {}) {
  // The fake makes its answers at the service's (manual) time.
  let now = Date.now()
  const upstream = await startUpstream(behaviour ?? answer.forecast(7.25, 'Rain', { now: () => now }))
  const service = new WeatherService({ apiKey: API_KEY, baseUrl: upstream.url, clock: 'manual', jitterRatio: 0, ...options })
  const advance = (ms) => {
    service.advanceTime(ms)
    now += ms
  }
  try {
    return await fn({ service, upstream, advance, now: () => now })
  } finally {
    service.close()
    await upstream.close()
  }
}

test('include: every product, with the documented fields, units and nulls, frozen', () =>
  withForecasts(async ({ service, now }) => {
    const result = await service.getForecast(null, 'pilot', 48.85, 2.35, { include: ALL })
    assert.deepEqual(Object.keys(result), ['summary', 'meta', 'details', 'hourly', 'daily', 'alerts', 'nextHour'])
    assert.deepEqual(result.summary, { condition: 'Rain', tempC: 7, tempF: 45 })
    assert.deepEqual(result.details, {
      feelsLikeC: 5.8, feelsLikeF: 42.4, humidity: 87, pressureHpa: 1013, windSpeedMs: 5.7, windGustMs: null, windDeg: 240,
      cloudsPct: 75, visibilityM: 8000, uvIndex: 0.2, precipMmPerH: null, description: 'light rain',
    })
    const hourStart = Math.floor(now() / 3_600_000) * 3_600_000
    assert.equal(result.hourly.length, 48)
    assert.deepEqual(result.hourly[0], {
      time: hourStart, tempC: 7.3, tempF: 45.1, condition: 'Rain', precipProbability: 0, precipMm: 0.4, windSpeedMs: 4.5, windGustMs: 9.1,
    })
    assert.deepEqual([result.hourly[1].windGustMs, result.hourly[1].precipMm], [null, null], 'missing is null, not 0')
    assert.equal(result.daily.length, 8)
    const today = new Date(now()).toISOString().slice(0, 10)
    assert.deepEqual(result.daily[0], {
      date: today, minC: 3.3, maxC: 10.3, minF: 37.9, maxF: 50.5, condition: 'Rain', precipProbability: 0.8, precipMm: 2.5,
      sunrise: Date.parse(`${today}T07:00:00Z`), sunset: Date.parse(`${today}T17:00:00Z`),
    })
    assert.equal(result.daily[2].precipMm, null)
    assert.deepEqual(result.alerts, [{
      event: 'Wind Advisory', sender: 'NWS Philadelphia - Mount Holly', start: hourStart + 3_600_000, end: hourStart + 12 * 3_600_000,
      description: '* WHAT...Southwest winds 20 to 30 mph with gusts up to 50 mph.\n* WHERE...Coastal areas.',
    }])
    assert.equal(result.nextHour.length, 61)
    const minute = Math.floor(now() / 60_000) * 60_000
    assert.deepEqual(result.nextHour[0], { time: minute, precipMm: 0 })
    assert.deepEqual(result.nextHour[40], { time: minute + 40 * 60_000, precipMm: 1.8 })
    for (const value of [result.details, result.hourly, result.hourly[0], result.daily, result.daily[0], result.alerts, result.alerts[0], result.nextHour, result.nextHour[0]]) {
      assert.ok(Object.isFrozen(value))
    }
  }))

test('a temperature on a tie rounds as the provider\'s number does, not down by its f32 storage', () =>
  // One Call gives two decimals: 7.45 (kept as the f32 7.4499998) is 7.5, as Math.round shows it.
  withForecasts(async ({ service }) => {
    const r = await service.getForecast(null, 'u', 48.85, 2.35, { include: ['details', 'hourly', 'daily'] })
    const tenth = (c) => Math.round(c * 10) / 10
    assert.deepEqual([r.details.feelsLikeC, r.details.feelsLikeF], [tenth(5.95), tenth(5.95 * 9 / 5 + 32)])
    assert.deepEqual([r.hourly[0].tempC, r.hourly[0].tempF], [7.5, 45.4])
    assert.deepEqual([r.daily[0].minC, r.daily[0].maxC], [tenth(3.45), tenth(10.45)])
  }, { behaviour: answer.forecast(7.45, 'Rain') }))

test('without include the result is exactly as before; getWeather unchanged', () =>
  withForecasts(async ({ service }) => {
    const plain = await service.getForecast(null, 'pilot', 48.85, 2.35)
    assert.deepEqual(Object.keys(plain), ['summary', 'meta'])
    assert.deepEqual(Object.keys(await service.getForecast(null, 'pilot', 48.85, 2.35, { include: [] })), ['summary', 'meta'])
    assert.deepEqual(await service.getWeather(null, 'pilot', 48.85, 2.35), { condition: 'Rain', tempC: 7, tempF: 45 })
    const some = await service.getForecast(null, 'pilot', 48.85, 2.35, { include: ['alerts', 'alerts'] })
    assert.deepEqual(Object.keys(some), ['summary', 'meta', 'alerts'])
  }))

test('the cost rule: products never add an upstream call; one call serves every product and user', () =>
  withForecasts(async ({ service, upstream }) => {
    assert.ok(await service.getWeather(null, 'glasses', 48.85, 2.35))
    const forecast = await service.getForecast(null, 'drone', 48.851, 2.351, { include: ALL })
    assert.equal(forecast.meta.source, 'cache')
    assert.equal(forecast.hourly.length, 48)
    await Promise.all(Array.from({ length: 20 }, (_, i) => service.getForecast(null, `d${i}`, 48.85, 2.35, { include: ['hourly'] })))
    assert.equal(upstream.count, 1)
    assert.equal(service.stats().upstreamRequests, 1)
  }))

test('past hours, days and minutes are dropped when served from the cache', () =>
  withForecasts(async ({ service, advance, now, upstream }) => {
    const first = await service.getForecast(null, 'pilot', 48.85, 2.35, { include: ['hourly', 'nextHour'] })
    const hourStart = Math.floor(now() / 3_600_000) * 3_600_000
    advance(2 * 3_600_000)
    const later = await service.getForecast(null, 'pilot', 48.85, 2.35, { include: ['hourly', 'nextHour'] })
    assert.equal(later.meta.source, 'cache')
    assert.equal(upstream.count, 1)
    assert.equal(later.hourly.length, 46)
    assert.equal(later.hourly[0].time, hourStart + 2 * 3_600_000, 'the first hour is the current one')
    assert.deepEqual(later.hourly[0], first.hourly[2])
    assert.deepEqual(later.nextHour, [], 'the minutes are over')
  }, { options: { freshTtlMs: 3 * 3_600_000, staleTtlMs: 4 * 3_600_000 } }))

test('an unknown include value rejects ERR_INVALID_ARG_VALUE; a non-array ERR_INVALID_ARG_TYPE', () =>
  withForecasts(async ({ service, upstream }) => {
    await assert.rejects(service.getForecast(null, 'u', 1, 2, { include: ['hourly', 'weekly'] }), {
      code: 'ERR_INVALID_ARG_VALUE', name: 'TypeError', message: "The property 'options.include[1]' must contain only 'details', 'hourly', 'daily', 'alerts', 'nextHour'. Received 'weekly'",
    })
    await assert.rejects(service.getForecast(null, 'u', 1, 2, { include: [7] }), { code: 'ERR_INVALID_ARG_VALUE' })
    await assert.rejects(service.getForecast(null, 'u', 1, 2, { include: 'hourly' }), { code: 'ERR_INVALID_ARG_TYPE' })
    assert.equal(upstream.count, 0)
  }))

test('a provider without products: details and nextHour null, lists empty', async () => {
  const service = new WeatherService({
    clock: 'manual',
    providers: [{ name: 'roof', fetch: async () => ({ celsius: 20.6, condition: 'Clear' }) }],
  })
  try {
    const r = await service.getForecast(null, 'u', 1, 2, { include: ALL })
    assert.deepEqual([r.details, r.hourly, r.daily, r.alerts, r.nextHour], [null, [], [], [], null])
  } finally {
    service.close()
  }
})

test('an answer without minutely or alerts: nextHour null, alerts []', () =>
  withForecasts(async ({ service }) => {
    const r = await service.getForecast(null, 'u', 1, 2, { include: ['alerts', 'nextHour', 'hourly'] })
    assert.deepEqual([r.alerts, r.nextHour, r.hourly.length], [[], null, 48])
  }, { behaviour: answer.forecast(3, 'Clear', { rainInMin: null, alert: false }) }))

/** `value` without the members the proxy adds for the chosen units. */
function withoutUnits(value) {
  if (Array.isArray(value)) return value.map(withoutUnits)
  if (value === null || typeof value !== 'object') return value
  return Object.fromEntries(Object.entries(value).filter(([k]) => !['temp', 'feelsLike', 'min', 'max'].includes(k)).map(([k, v]) => [k, withoutUnits(v)]))
}

test('the proxy: include= gives getForecast\'s objects, temperatures also in the chosen units; the ETag covers products', () =>
  withProxy(answer.forecast(7.25, 'Rain'), async ({ get, upstream }) => {
    const path = '/v1/weather?lat=48.85&lon=2.35&units=imperial&include=details,hourly,daily,alerts,nextHour'
    const first = await get(path)
    assert.equal(first.status, 200)
    const body = await first.json()
    assert.deepEqual(Object.keys(body), ['condition', 'tempC', 'tempF', 'temp', 'units', 'source', 'fetchedAt', 'ageMs', 'details', 'hourly', 'daily', 'alerts', 'nextHour'])
    assert.equal(body.hourly[0].temp, body.hourly[0].tempF)
    assert.equal(body.details.feelsLike, body.details.feelsLikeF)
    assert.deepEqual([body.daily[0].min, body.daily[0].max], [body.daily[0].minF, body.daily[0].maxF])
    // The same objects as getForecast, from a service over the same fake.
    const service = new WeatherService({ apiKey: API_KEY, baseUrl: upstream.url })
    try {
      const direct = await service.getForecast(null, 'u', 48.85, 2.35, { include: ALL })
      for (const product of ALL) assert.deepEqual(withoutUnits(body[product]), direct[product], product)
    } finally {
      service.close()
    }
    const etag = first.headers.get('etag')
    assert.match(etag, /^W\/"[0-9a-f]+-[0-9a-f]+-i-p1f-0\.0\.[0-9a-f]+"$/)
    assert.match(first.headers.get('cache-control'), /^max-age=\d+$/)
    const plain = await get('/v1/weather?lat=48.85&lon=2.35&units=imperial', { headers: { 'If-None-Match': etag } })
    assert.equal(plain.status, 200, 'without products: another representation')
    assert.notEqual(plain.headers.get('etag'), etag)
    assert.deepEqual(Object.keys(await plain.json()), ['condition', 'tempC', 'tempF', 'temp', 'units', 'source', 'fetchedAt', 'ageMs'])
    const again = await get(path, { headers: { 'If-None-Match': etag } })
    assert.equal(again.status, 304)
    const bad = await get('/v1/weather?lat=48.85&lon=2.35&include=hourly,weekly')
    assert.equal(bad.status, 400)
    assert.equal((await bad.json()).error.code, 'ERR_INVALID_ARG_VALUE')
    assert.equal(upstream.count, 2, 'one call for the proxy (products included), one for the service')
  }))

/** A loopback api.weather.gov (the documented shapes, trimmed): `inside` false answers 404 to /points. */
async function startNws({ inside = true, latest } = {}) {
  const http = await import('node:http')
  const requests = []
  const server = http.createServer((req, res) => {
    const base = `http://${req.headers.host}`
    const path = req.url.split('?')[0]
    requests.push({ path, userAgent: req.headers['user-agent'] })
    const hour = Math.floor(Date.now() / 3_600_000) * 3_600
    const iso = (s) => new Date(s * 1000).toISOString().replace('.000Z', '+00:00')
    const bodies = {
      '/gridpoints/PHI/50,75/stations': { type: 'FeatureCollection', features: [{ id: `${base}/stations/KPHL`, properties: { stationIdentifier: 'KPHL' } }] },
      '/gridpoints/PHI/50,75/forecast/hourly': {
        properties: {
          periods: Array.from({ length: 60 }, (_, i) => ({
            number: i + 1, startTime: iso(hour + i * 3600), endTime: iso(hour + (i + 1) * 3600), temperature: 50 + i % 5, temperatureUnit: 'F',
            probabilityOfPrecipitation: { unitCode: 'wmoUnit:percent', value: 30 }, windSpeed: '10 mph', windDirection: 'SW',
            icon: 'https://api.weather.gov/icons/land/day/tsra,30?size=small', shortForecast: 'Chance Showers And Thunderstorms',
          })),
        },
      },
      '/stations/KPHL/observations/latest': latest ?? {
        properties: { textDescription: 'Cloudy', icon: 'https://api.weather.gov/icons/land/day/ovc?size=medium', temperature: { unitCode: 'wmoUnit:degC', value: 11.7 } },
      },
      '/alerts/active': { type: 'FeatureCollection', features: [] },
    }
    if (path.startsWith('/points/')) {
      if (!inside) return json(res, 404, { status: 404, title: 'Data Unavailable For Requested Point' })
      return json(res, 200, {
        properties: { forecastHourly: `${base}/gridpoints/PHI/50,75/forecast/hourly`, observationStations: `${base}/gridpoints/PHI/50,75/stations` },
      }, { 'Cache-Control': 'public, max-age=86400' })
    }
    return bodies[path] ? json(res, 200, bodies[path]) : json(res, 404, {})
  })
  const json = (res, status, body, headers = {}) => {
    res.writeHead(status, { 'Content-Type': 'application/geo+json', ...headers })
    res.end(JSON.stringify(body))
  }
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${server.address().port}`, requests, close: () => new Promise((resolve) => server.close(resolve)) }
}

test("the NWS provider: { name: 'nws', userAgent }, its requests counted as calls, products from the hourly forecast", async () => {
  const nws = await startNws()
  const service = new WeatherService({ clock: 'manual', providers: [{ name: 'nws', userAgent: 'acme-drones/1 ops@acme.example', baseUrl: nws.url }] })
  try {
    const r = await service.getForecast(null, 'pilot', 39.9526, -75.1652, { include: ALL })
    assert.deepEqual([r.meta.provider, r.summary.condition, r.summary.tempC, r.summary.tempF], ['nws', 'Clouds', 12, 53])
    assert.equal(r.hourly.length, 48)
    assert.deepEqual([r.hourly[0].tempF, r.hourly[0].condition, r.hourly[0].precipProbability, r.hourly[0].precipMm], [50, 'Thunderstorm', 0.3, null])
    assert.deepEqual([r.alerts, r.nextHour, r.details.description], [[], null, 'Cloudy'])
    assert.deepEqual(nws.requests.map((q) => q.path), [
      '/points/39.95,-75.17', '/gridpoints/PHI/50,75/stations', '/gridpoints/PHI/50,75/forecast/hourly', '/stations/KPHL/observations/latest', '/alerts/active',
    ])
    assert.ok(nws.requests.every((q) => q.userAgent === 'acme-drones/1 ops@acme.example'))
    assert.equal(service.stats().upstreamRequests, 5, 'every request is a call')
    assert.throws(() => new WeatherService({ providers: ['nws'] }), { code: 'ERR_INVALID_ARG_VALUE', message: /userAgent/ })
  } finally {
    service.close()
    await nws.close()
  }
})

test('NWS: a station reporting no sky (icon null, empty text) takes the current hour\'s condition, not Unknown', async () => {
  const nws = await startNws({ latest: { properties: { textDescription: '', icon: null, temperature: { unitCode: 'wmoUnit:degC', value: 11.7 } } } })
  const service = new WeatherService({ clock: 'manual', providers: [{ name: 'nws', userAgent: 'acme-drones/1 ops@acme.example', baseUrl: nws.url }] })
  try {
    const r = await service.getForecast(null, 'pilot', 39.9526, -75.1652, { include: ['details'] })
    assert.deepEqual([r.summary.condition, r.summary.tempC], ['Thunderstorm', 12])
    assert.equal(r.details.description, 'Chance Showers And Thunderstorms')
  } finally {
    service.close()
    await nws.close()
  }
})

test('serve --providers nws,openweather: outside the US NWS hands over to OpenWeather, no error', async () => {
  const nws = await startNws({ inside: false })
  try {
    await withProxy(answer.forecast(7.25, 'Rain'), async ({ get, upstream }) => {
      const res = await get('/v1/weather?lat=48.85&lon=2.35&include=hourly')
      assert.equal(res.status, 200)
      const body = await res.json()
      assert.deepEqual([body.condition, body.tempC, body.hourly.length], ['Rain', 7, 48])
      assert.deepEqual([nws.requests.length, upstream.count], [1, 1])
      const metrics = await (await get('/metrics')).text()
      assert.match(metrics, /^weather_cache_upstream_errors_total\{provider="nws"\} 0$/m)
    }, ['--providers', 'nws,openweather', '--nws-user-agent', 'acme-drones/1 ops@acme.example', '--nws-url', nws.url])
  } finally {
    await nws.close()
  }
})

test('products: false keeps nothing: One Call excludes them again, include rejects ERR_INVALID_STATE', () =>
  withForecasts(async ({ service, upstream }) => {
    assert.deepEqual(await service.getWeather(null, 'u', 48.85, 2.35), { condition: 'Rain', tempC: 7, tempF: 45 })
    assert.equal(upstream.requests[0].exclude, 'minutely,hourly,daily,alerts')
    await assert.rejects(service.getForecast(null, 'u', 48.85, 2.35, { include: ['hourly'] }), { code: 'ERR_INVALID_STATE' })
    assert.deepEqual(Object.keys(await service.getForecast(null, 'u', 48.85, 2.35)), ['summary', 'meta'])
    assert.throws(() => new WeatherService({ products: 'no' }), { code: 'ERR_INVALID_ARG_TYPE' })
  }, { options: { products: false } }))
