// `npm run bench -- --check` (bench/targets.mjs, bench/run.mjs): a missed judged target, a target
// that could not be measured and a scenario that throws each make it exit 1; noisy targets are
// judged in full runs and only reported in quick ones.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath, pathToFileURL } from 'node:url'

import { PROXY_TARGETS, judgeProxy } from '../bench/scenarios/proxy.mjs'
import { Targets } from '../bench/targets.mjs'
import { until } from './helpers.mjs'

const run = fileURLToPath(new URL('../bench/run.mjs', import.meta.url))

async function targetsOf(scenarios) {
  const targets = new Targets({ log: () => {} })
  for (const [name, declared, body] of scenarios) await targets.scenario(name, declared, body)
  return targets
}

test('--check: an exact target missed fails quick and full runs; a noisy one fails full runs only', async () => {
  const exact = await targetsOf([['counts', [['calls per area', 'exact', '== 1']], (judge) => judge('calls per area', 1.01, false)]])
  assert.equal(exact.verdict({ quick: true }).exitCode, 1)
  assert.equal(exact.verdict({ quick: false }).exitCode, 1)
  assert.match(exact.verdict({ quick: true }).lines.join('\n'), /MISSED calls per area: 1\.01, target == 1/)

  const noisy = await targetsOf([['timings', [['ns per hit', 'noisy', '<= 2']], (judge) => judge('ns per hit', 2.4, false)]])
  const quick = noisy.verdict({ quick: true })
  assert.equal(quick.exitCode, 0)
  assert.match(quick.lines[0], /1 noisy target\(s\) reported, not judged/)
  assert.equal(noisy.list[0].verdict, 'MISSED')
  assert.equal(noisy.verdict({ quick: false }).exitCode, 1)

  const met = await targetsOf([['both', [['a', 'exact', '== 1'], ['b', 'noisy', '<= 2']], (judge) => (judge('a', 1, true), judge('b', 1.5, true))]])
  assert.deepEqual([met.verdict({ quick: true }).exitCode, met.verdict({ quick: false }).exitCode], [0, 0])
  assert.equal(met.verdict({ quick: false }).lines[0], 'check: 2 met, 0 missed, 0 unmeasured')
})

test('--check: a target that could not be measured fails whatever its kind and the run, with the reason', async () => {
  const targets = await targetsOf([
    ['tier', [['tier calls', 'noisy', '<= 1.05']], () => 'redis-server is not installed'],
    ['proxy', [['rps', 'noisy', '>= 1.5'], ['p99', 'noisy', '<= 1']], (judge) => (judge('rps', 2, true), judge.cannot('p99', 'varnishd is not installed'))],
    ['silent', [['forgotten', 'exact', '== 1']], () => {}],
    ['nan', [['divided by zero', 'exact', '<= 1']], (judge) => judge('divided by zero', NaN, false)],
  ])
  const { exitCode, lines } = targets.verdict({ quick: true })
  assert.equal(exitCode, 1)
  assert.equal(lines[0], 'check: 0 met, 0 missed, 4 unmeasured; 1 noisy target(s) reported, not judged (quick run)')
  assert.deepEqual(lines.slice(1), [
    'check: UNMEASURED tier calls: redis-server is not installed',
    'check: UNMEASURED p99: varnishd is not installed',
    'check: UNMEASURED forgotten: the scenario gave no value for it',
    'check: UNMEASURED divided by zero: its value is NaN',
  ])
})

test('--check: a scenario that throws, or judges a target it did not declare, fails', async () => {
  for (const body of [
    () => {
      throw new Error('upstream did not start')
    },
    (judge) => judge('a typo', 1, true),
  ]) {
    const targets = await targetsOf([['broken', [['declared', 'exact', '== 1']], body]])
    const { exitCode, lines } = targets.verdict({ quick: false })
    assert.equal(exitCode, 1)
    assert.deepEqual(targets.failed, ['broken'])
    assert.match(lines[1], /^check: UNMEASURED declared: the scenario failed: /)
    assert.equal(lines.at(-1), 'check: FAILED scenario broken')
  }
})

test('npm run bench -- --check --only tier without redis-server on PATH: exit 1 naming the target and why', () => {
  const bench = (args) => spawnSync(process.execPath, [run, ...args], { encoding: 'utf8', env: { ...process.env, PATH: '/nonexistent' } })
  const checked = bench(['--check', '--only', 'tier'])
  assert.equal(checked.status, 1, checked.stdout + checked.stderr)
  assert.match(checked.stdout, /check: UNMEASURED shared tier: 4 instances within 1\.03x of one process \(median of seeds 1-5\): redis-server is not installed/)
  // Without --check the same run is a report.
  const reported = bench(['--only', 'tier'])
  assert.equal(reported.status, 0, reported.stdout + reported.stderr)
  assert.match(reported.stdout, /UNMEASURED: shared tier: .*redis-server is not installed/)
  // A scenario name it does not know is a usage error.
  assert.equal(bench(['--check', '--only', 'tiers']).status, 2)
  // So is a flag it does not know: a misspelt --check would otherwise turn the verdict into a
  // report that always exits 0.
  const misspelt = bench(['--chek', '--only', 'tier'])
  assert.equal(misspelt.status, 2, misspelt.stdout + misspelt.stderr)
  assert.match(misspelt.stderr, /bench: unknown argument "--chek"/)
  assert.equal(misspelt.stdout, '')
})

test('the proxy targets: a pair where either side answered with errors is not compared (unmeasured, saying which)', async () => {
  const row = (reqPerSec, p99Ms, errors = 0, non2xx = 0) => ({ reqPerSec, p99Ms, errors, non2xx })
  const result = {
    rows: {
      // serve answering every request with a fast 502 (its upstream unreachable): "faster".
      'weather-cache serve, defaults': row(60_000, 2, 0, 180_000),
      'Varnish, defaults': row(20_000, 10),
      'weather-cache serve, one core': row(30_000, 5),
      'Varnish, one core': row(10_000, 20),
    },
    missing: {},
  }
  const targets = new Targets({ log: () => {} })
  await targets.scenario('drone proxy', PROXY_TARGETS, (judge) => judgeProxy(judge, result))
  assert.deepEqual(
    targets.list.map((t) => [t.target, t.measured, t.value ?? t.why]),
    [
      ['proxy, both at defaults: req/s >= 1.5x Varnish', false, 'weather-cache serve, defaults: 0 socket errors and 180000 answers other than 2xx/3xx'],
      ["proxy, both at defaults: p99 <= Varnish's", false, 'weather-cache serve, defaults: 0 socket errors and 180000 answers other than 2xx/3xx'],
      ['proxy, both on one core: req/s >= 1.5x Varnish', true, 3],
      ["proxy, both on one core: p99 <= Varnish's", true, 0.25],
    ],
  )
  assert.equal(targets.verdict({ quick: true }).exitCode, 1)
})

// A regression that removes the front (lib/front.js) makes the hit path scenario throw (it
// checks that the front answered every repeat): --check must then exit 1 and say so, promptly,
// even though the scenario left its upstream process and services open when it threw.
test('npm run bench -- --check --quick --only hit with the front removed: exit 1, FAILED, no hang', (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'weather-cache-bench-check-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const noFront = path.join(dir, 'no-front.mjs')
  writeFileSync(noFront, `import { createRequire } from 'node:module'
createRequire(import.meta.url)(${JSON.stringify(fileURLToPath(new URL('../lib/binding.js', import.meta.url)))}).WeatherService.prototype.frontAttach = () => null
`)
  const started = Date.now()
  const bench = spawnSync(process.execPath, ['--import', pathToFileURL(noFront).href, run, '--check', '--quick', '--only', 'hit'], {
    encoding: 'utf8',
    timeout: 90_000,
    killSignal: 'SIGKILL',
  })
  assert.equal(bench.signal, null, `the run did not end within ${Date.now() - started} ms:\n${bench.stdout}${bench.stderr}`)
  assert.equal(bench.status, 1, bench.stdout + bench.stderr)
  assert.match(bench.stdout, /check: UNMEASURED hit path \(front\) within 2x of the JS floor: the scenario failed: the front answered 0 of the hits/)
  assert.match(bench.stdout, /check: FAILED scenario hit path/)
})

test("the benchmark's upstream process ends when the process that started it ends without closing it", async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'weather-cache-bench-check-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const script = path.join(dir, 'leave-upstream.mjs')
  writeFileSync(script, `import { startUpstream } from ${JSON.stringify(new URL('../bench/harness.mjs', import.meta.url).href)}
const upstream = await startUpstream()
console.log(JSON.stringify({ pid: upstream.pid }))
process.exit(0)
`)
  const parent = spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: 30_000 })
  assert.equal(parent.status, 0, parent.stdout + parent.stderr)
  const { pid } = JSON.parse(parent.stdout)
  assert.ok(Number.isInteger(pid), parent.stdout)
  const alive = () => {
    try {
      process.kill(pid, 0)
      return true
    } catch {
      return false
    }
  }
  try {
    await until(() => !alive(), `upstream process ${pid} to exit`, 10_000)
  } finally {
    if (alive()) process.kill(pid, 'SIGKILL')
  }
})
