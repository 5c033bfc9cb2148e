// Run under Bun by __test__/bun.test.mjs: the Dashboard imports this package from Bun (its start
// script is `bun src/index.ts`). require and import, a getWeather against a loopback upstream, a
// coalesced burst, a debug logger receiving events, the JS front answering repeat hits, close(),
// and a prompt exit on its own.
import assert from 'node:assert/strict'
import http from 'node:http'
import { createRequire } from 'node:module'

import * as esm from '../../main.js'

const require = createRequire(import.meta.url)
const cjs = require('../../main.js')
assert.equal(typeof Bun, 'object', 'running under Bun')
assert.equal(esm.WeatherService, cjs.WeatherService, 'import and require give the same module')
assert.ok(esm.weatherService instanceof cjs.WeatherService)

const API_KEY = 'bun-smoke-key'
let upstreamCalls = 0
const server = http.createServer((req, res) => {
  upstreamCalls++
  const url = new URL(req.url, 'http://127.0.0.1')
  assert.equal(url.searchParams.get('appid'), API_KEY)
  const body = JSON.stringify({ current: { temp: 20.6, weather: [{ main: 'Clouds' }] } })
  setTimeout(() => res.writeHead(200, { 'Content-Type': 'application/json' }).end(body), 50)
})
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
const baseUrl = `http://127.0.0.1:${server.address().port}`

const events = []
const logger = {}
for (const level of ['trace', 'debug', 'info', 'warn', 'error', 'fatal']) {
  logger[level] = function (fields, name) {
    assert.equal(this, logger, 'called with the logger as this')
    events.push({ level, name, fields })
  }
}
const service = new esm.WeatherService({ apiKey: API_KEY, baseUrl, logLevel: 'debug', logger })

// The Dashboard's 3-argument call, with a session that carries the user and the logger.
const session = { userId: 'dash-user', logger }
const first = await service.getWeather(session, 48.8566, 2.3522)
assert.deepEqual({ ...first }, { condition: 'Clouds', tempC: 21, tempF: 69 })

// 100 simultaneous requests for one spot elsewhere: one upstream call, 100 equal answers.
const burst = await Promise.all(Array.from({ length: 100 }, (_, i) => service.getWeather(null, `drone-${i}`, 40.7128, -74.006)))
assert.equal(upstreamCalls, 2)
assert.ok(burst.every((w) => w && w.tempC === 21))
const hit = await service.getForecast(session, 'dash-user', 48.857, 2.352)
assert.equal(hit.meta.source, 'cache')

const names = new Set(events.map((e) => e.name))
for (const name of ['weather.request.attempted', 'weather.cache.miss', 'weather.request.sent', 'weather.request.coalesced', 'weather.cache.hit.fresh']) {
  assert.ok(names.has(name), `event ${name}`)
}
const stats = service.stats()
assert.equal(stats.requests, 102)
assert.equal(stats.coalesced, 99)

// The JS front answers repeat hits under Bun too, and they count as user hits.
const { frontHitsOf } = require('../../lib/weather-service.js')
const quiet = new esm.WeatherService({ apiKey: API_KEY, baseUrl })
const answers = []
for (let i = 0; i < 5; i++) answers.push(await quiet.getWeather(session, 48.8566 + i * 1e-4, 2.3522))
assert.ok(answers.every((w) => w === answers[0]), 'one frozen summary')
assert.equal(frontHitsOf(quiet), 3, 'the second answer is the addon\'s, and the front remembers it')
assert.equal(quiet.stats().userHits, 4)
quiet.close()

service.close()
await assert.rejects(service.getWeather(null, 'late', 1, 1), { code: 'ERR_SERVICE_CLOSED' })
server.close()
console.log(JSON.stringify({ bun: Bun.version, upstreamCalls, events: events.length, requests: stats.requests, doneAt: Date.now() }))
// Nothing else: the process must now exit on its own (no handle keeps it alive).
