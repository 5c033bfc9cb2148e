// The package under Bun, the Dashboard's runtime: __test__/bun/smoke.mjs run by the `bun`
// devDependency's binary.
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const bun = fileURLToPath(new URL('../node_modules/.bin/bun', import.meta.url))

// `npm ci --ignore-scripts` or an offline install leaves Bun's placeholder binary: skip loudly,
// except in CI, where the smoke run must happen.
const bunRuns = spawnSync(bun, ['--version'], { stdio: 'ignore' }).status === 0
if (!bunRuns && process.env.CI) throw new Error('CI is set but the bun devDependency cannot run')
if (!bunRuns) console.warn('SKIPPED: node_modules/.bin/bun does not run (installed with --ignore-scripts?); the Bun smoke test did not run')

test('under Bun: require, import, getWeather, a coalesced burst, debug events, the JS front, close, prompt exit', { skip: !bunRuns && 'bun is not installed' }, async () => {
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
  assert.equal(result.upstreamCalls, 3, 'two areas, and the front check on a service of its own')
  assert.equal(result.requests, 102)
  assert.ok(result.events > 100, `${result.events} events`)
  assert.ok(exitedAt - result.doneAt < 2_000, `exited ${exitedAt - result.doneAt} ms after closing`)
})
