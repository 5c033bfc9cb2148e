// Run by scripts/check-binaries.mjs in an arm64 Node under qemu-user-static, with
// NAPI_RS_NATIVE_LIBRARY_PATH naming the arm64 binary: loads the package entry point and makes
// one getWeather call against a loopback upstream in this same process. Prints one JSON line.
import { createRequire } from 'node:module'

import { API_KEY, startUpstream } from '../__test__/upstream.mjs'

const require = createRequire(import.meta.url)
const { WeatherService } = require('../main.js')

const upstream = await startUpstream()
const service = new WeatherService({ apiKey: API_KEY, baseUrl: upstream.url })
try {
  const started = Date.now()
  const weather = await service.getWeather(null, 'drone-1', 48.8566, 2.3522)
  const report = process.report.getReport().header
  console.log(
    JSON.stringify({
      arch: process.arch,
      node: process.version,
      glibc: report.glibcVersionRuntime,
      weather,
      upstreamCalls: upstream.count,
      ms: Date.now() - started,
    }),
  )
} finally {
  service.close()
  await upstream.close()
}
