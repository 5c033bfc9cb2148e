// Runs weather-cache-server (the static binary, or the image holding it) the way an operator
// does, against the fake OpenWeather of lib/testing.mjs on loopback, and reports what a client
// saw: /healthz, a weather answer from the network then from the cache, one upstream call, and
// a clean exit on SIGTERM. Used by scripts/check-binaries.mjs and __test__/container.test.mjs.
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { answer, API_KEY, startUpstream } from '../lib/testing.mjs'

// Zürich; the fake answers it with 7.2 °C and rain.
const PLACE = { lat: 47.3769, lon: 8.5417 }
const REPLY = { celsius: 7.2, main: 'Rain' }

/**
 * `launch({ upstream, apiKeyFile })` returns `{ command, args, env?, stop? }`: the process to
 * start (it prints "listening on <url>" once it accepts requests) and how to ask it to stop
 * (default: SIGTERM to that process). `apiKeyFile` holds the fake's key (mode 0644, in a private
 * directory: a container's non-root user must read it). Resolves to what was seen; throws, with
 * the process's output, at the first step that differs from what an operator expects.
 */
export async function smokeServer(launch, { startTimeoutMs = 60_000, stopTimeoutMs = 15_000 } = {}) {
  const upstream = await startUpstream(answer.fixed(REPLY.celsius, REPLY.main))
  const dir = mkdtempSync(join(tmpdir(), 'weather-cache-smoke-'))
  const apiKeyFile = join(dir, 'openweather-api-key')
  writeFileSync(apiKeyFile, `${API_KEY}\n`, { mode: 0o644 })
  const { command, args, env = process.env, stop } = launch({ upstream, apiKeyFile })
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => (stdout += d))
  child.stderr.on('data', (d) => (stderr += d))
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
  const failed = (what) => new Error(`${what}\n$ ${command} ${args.join(' ')}\n--- stdout\n${stdout}--- stderr\n${stderr}`)
  try {
    const url = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(failed(`not listening after ${startTimeoutMs} ms`)), startTimeoutMs)
      const look = () => {
        const match = /listening on (https?:\/\/\S+)/.exec(stdout)
        if (match) {
          clearTimeout(timer)
          resolve(match[1])
        }
      }
      child.stdout.on('data', look)
      exited.then(({ code, signal }) => {
        clearTimeout(timer)
        reject(failed(`exited (${code ?? signal}) before listening`))
      })
    })
    const healthz = await fetch(`${url}/healthz`)
    const healthText = await healthz.text()
    if (healthz.status !== 200 || healthText !== 'ok\n') throw failed(`/healthz answered ${healthz.status} ${JSON.stringify(healthText)}`)
    const ask = async () => {
      const response = await fetch(`${url}/v1/weather?lat=${PLACE.lat}&lon=${PLACE.lon}`)
      const body = await response.json()
      if (response.status !== 200) throw failed(`/v1/weather answered ${response.status} ${JSON.stringify(body)}`)
      return body
    }
    const first = await ask()
    const second = await ask()
    const expected = [REPLY.main, Math.round(REPLY.celsius)]
    if (first.condition !== expected[0] || first.tempC !== expected[1] || first.source !== 'network') {
      throw failed(`/v1/weather gave ${JSON.stringify(first)}, expected ${expected.join(', ')} from the network`)
    }
    if (second.source !== 'cache' || second.tempC !== expected[1]) throw failed(`the second /v1/weather gave ${JSON.stringify(second)}, expected the cached answer`)
    if (upstream.count !== 1) throw failed(`${upstream.count} upstream calls for two requests to one place, expected 1`)

    const stopping = Date.now()
    if (stop) await stop(child)
    else child.kill('SIGTERM')
    let timer
    const exit = await Promise.race([exited, new Promise((resolve) => (timer = setTimeout(resolve, stopTimeoutMs, null)))])
    clearTimeout(timer)
    if (exit === null) throw failed(`still running ${stopTimeoutMs} ms after SIGTERM`)
    if (exit.code !== 0) throw failed(`exited with ${exit.code ?? exit.signal} on SIGTERM, expected 0`)
    return { url, healthz: healthText.trim(), first, second, upstreamCalls: upstream.count, exit, stopMs: Date.now() - stopping, stdout, stderr }
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
    await upstream.close()
    rmSync(dir, { recursive: true, force: true })
  }
}
