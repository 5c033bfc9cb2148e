// worker_threads: a Worker that loaded the addon and is terminated with fetches in flight must
// not crash or hang the process (napi-rs addons with a tokio runtime have; napi-rs issue 3443),
// and the main thread's own service keeps answering correctly throughout.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))

// Runs in a child process, so that an abort or a segfault shows as its exit status.
const script = `
import http from 'node:http'
import { Worker } from 'node:worker_threads'
import { WeatherService } from './main.js'

const CYCLES = 20
let upstreamCalls = 0
const server = http.createServer((req, res) => {
  upstreamCalls++
  const lat = Number(new URL(req.url, 'http://x').searchParams.get('lat'))
  const body = JSON.stringify({ current: { temp: Math.round(lat * 10) / 10, weather: [{ main: 'Clear' }] } })
  // Slow enough that every worker is terminated with its burst in flight.
  setTimeout(() => res.writeHead(200, { 'Content-Type': 'application/json' }).end(body), 300)
})
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
const url = 'http://127.0.0.1:' + server.address().port

const workerSource = \`
  const { parentPort, workerData } = require('node:worker_threads')
  const { WeatherService } = require(workerData.main)
  const service = new WeatherService({ apiKey: 'k', baseUrl: workerData.url, logLevel: 'debug', logger: { debug() {}, warn() {} } })
  const pending = []
  for (let i = 0; i < 50; i++) pending.push(service.getWeather({ logger: { debug() {}, warn() {} } }, 'w' + i, 10 + (i % 5) * 0.2, 10 + workerData.cycle))
  parentPort.postMessage('fired')
\`

// The main thread's own service answers throughout; its answers must stay right.
const main = new WeatherService({ apiKey: 'k', baseUrl: url })
let mainAnswers = 0
let wrong = 0
let stop = false
const mainLoop = (async () => {
  for (let i = 0; !stop; i++) {
    await new Promise((resolve) => setImmediate(resolve))
    const lat = 40 + (i % 3) * 0.5
    const weather = await main.getWeather(null, 'main-' + (i % 3), lat, 0)
    if (!weather || weather.tempC !== Math.round(lat)) wrong++
    mainAnswers++
  }
})()

for (let cycle = 0; cycle < CYCLES; cycle++) {
  const worker = new Worker(workerSource, { eval: true, execArgv: [], workerData: { main: new URL('./main.js', 'file://${root}/').pathname, url, cycle } })
  await new Promise((resolve, reject) => {
    worker.once('message', resolve)
    worker.once('error', reject)
  })
  await new Promise((resolve) => setTimeout(resolve, 20))
  await worker.terminate()
}
stop = true
await mainLoop
const last = await main.getWeather(null, 'main-final', 45, 0)
main.close()
server.close()
console.log(JSON.stringify({ cycles: CYCLES, mainAnswers, wrong, last, upstreamCalls }))
`

test('20 Workers terminated mid-flight: no crash, no hang, the main thread answers right', async () => {
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: root })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => (stdout += d))
  child.stderr.on('data', (d) => (stderr += d))
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
  const [code, signal] = await new Promise((resolve) => child.on('exit', (...args) => resolve(args)))
  clearTimeout(timer)
  assert.deepEqual({ code, signal }, { code: 0, signal: null }, `${stdout}\n${stderr}`)
  assert.equal(stderr, '')
  const result = JSON.parse(stdout)
  assert.equal(result.cycles, 20)
  assert.equal(result.wrong, 0, 'every answer of the main thread was right')
  assert.ok(result.mainAnswers > 20, `the main thread kept answering (${result.mainAnswers})`)
  assert.deepEqual(result.last, { condition: 'Clear', tempC: 45, tempF: 113 })
  assert.ok(result.upstreamCalls >= 20, 'the workers really had fetches in flight')
})
