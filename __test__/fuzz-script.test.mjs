// `npm run fuzz` (scripts/fuzz.mjs): a run that would fuzz nothing is a usage error, never a pass.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

const script = fileURLToPath(new URL('../scripts/fuzz.mjs', import.meta.url))

test('npm run fuzz -- --only with a name that is no target: exit 2 naming it and the targets, before any build', () => {
  // PATH without cargo: a run that got as far as building would fail differently (exit 1).
  const run = spawnSync(process.execPath, [script, '--seconds', '1', '--only', 'retry_after,retry-after'], {
    encoding: 'utf8',
    env: { ...process.env, PATH: '/nonexistent' },
    timeout: 30_000,
  })
  assert.equal(run.status, 2, run.stdout + run.stderr)
  assert.match(run.stderr, /fuzz: no target named "retry-after" \(the targets: grid, openweather_body, proxy_query, retry_after\)/)
  assert.doesNotMatch(run.stdout, /building/)
})

test("npm run fuzz builds against the addon's Cargo.lock: fuzz/Cargo.lock starts as a copy of it", (t) => {
  const fuzzLock = fileURLToPath(new URL('../fuzz/Cargo.lock', import.meta.url))
  const rootLock = readFileSync(fileURLToPath(new URL('../Cargo.lock', import.meta.url)), 'utf8')
  const before = existsSync(fuzzLock) ? readFileSync(fuzzLock, 'utf8') : null
  t.after(() => (before === null ? rmSync(fuzzLock, { force: true }) : writeFileSync(fuzzLock, before)))
  // A lock resolved on its own, with versions the addon does not ship.
  writeFileSync(fuzzLock, rootLock.replace(/(name = "hyper"\nversion = ")[^"]+/, '$19.9.9'))
  // PATH without cargo: the run stops at the build (exit 1), after preparing the lock.
  const run = spawnSync(process.execPath, [script, '--seconds', '1', '--only', 'grid'], { encoding: 'utf8', env: { ...process.env, PATH: '/nonexistent' }, timeout: 30_000 })
  assert.equal(run.status, 1, run.stdout + run.stderr)
  assert.match(run.stdout + run.stderr, /cargo: spawn cargo ENOENT/)
  assert.equal(readFileSync(fuzzLock, 'utf8'), rootLock)
})
