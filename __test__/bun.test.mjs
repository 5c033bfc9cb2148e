// The package under Bun, the Dashboard's runtime: __test__/bun/smoke.mjs run by the `bun`
// devDependency's binary.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const bun = fileURLToPath(new URL('../node_modules/.bin/bun', import.meta.url))

test('under Bun: require, import, getWeather, a coalesced burst, debug events, close, prompt exit', async () => {
  const child = spawn(bun, ['__test__/bun/smoke.mjs'], { cwd: root })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => (stdout += d))
  child.stderr.on('data', (d) => (stderr += d))
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
  const code = await new Promise((resolve) => child.on('exit', resolve))
  const exitedAt = Date.now()
  clearTimeout(timer)
  assert.equal(code, 0, `${stdout}\n${stderr}`)
  const result = JSON.parse(stdout)
  assert.match(result.bun, /^\d+\.\d+\.\d+/)
  assert.equal(result.upstreamCalls, 2)
  assert.equal(result.requests, 102)
  assert.ok(result.events > 100, `${result.events} events`)
  assert.ok(exitedAt - result.doneAt < 2_000, `exited ${exitedAt - result.doneAt} ms after closing`)
})
