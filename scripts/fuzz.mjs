// `npm run fuzz [-- --seconds N] [--only a,b]`: builds the cargo-fuzz targets (fuzz/fuzz_targets),
// then runs each for a bounded time, one after the other, and reports executions and findings.
// Not part of `npm test`; CI runs it for 5 s per target (.ci/run). Needs the nightly toolchain
// and cargo-fuzz (`cargo install cargo-fuzz --version 0.13.2 --locked`). CARGO_TARGET_DIR moves
// the build.
//
// Each target's working corpus is fuzz/corpus/<target> (ignored by git), grown from the seeds
// committed in fuzz/seeds/<target>. A crash leaves its input in fuzz/artifacts/<target> and makes
// this script exit 1; reproduce it with `cargo +nightly fuzz run <target> <artifact>`.
import { spawn } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const fuzzDir = fileURLToPath(new URL('../fuzz/', import.meta.url))
const args = process.argv.slice(2)
const flag = (name) => {
  const i = args.findIndex((a) => a === `--${name}` || a.startsWith(`--${name}=`))
  if (i < 0) return undefined
  return args[i].includes('=') ? args[i].split('=')[1] : args[i + 1]
}
const seconds = Number(flag('seconds') ?? 60)
if (!Number.isInteger(seconds) || seconds < 1) {
  console.error('fuzz: --seconds must be a positive integer')
  process.exit(2)
}
const targets = readdirSync(`${fuzzDir}fuzz_targets`).map((f) => f.replace(/\.rs$/, '')).sort()
const only = flag('only')?.split(',')
// A name that is no target would leave it out silently, and a run that fuzzes nothing passes.
const unknown = only?.filter((name) => !targets.includes(name)) ?? []
if (targets.length === 0 || unknown.length > 0 || only?.length === 0) {
  console.error(`fuzz: no target named ${unknown.map((name) => `"${name}"`).join(', ') || 'in --only'} (the targets: ${targets.join(', ') || 'none, in fuzz/fuzz_targets'})`)
  process.exit(2)
}
const chosen = only ? targets.filter((t) => only.includes(t)) : targets

function run(command, argv) {
  return new Promise((resolve) => {
    const child = spawn(command, argv, { cwd: fuzzDir, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (d) => (output += d))
    child.stderr.on('data', (d) => (output += d))
    child.on('error', (error) => resolve({ code: null, output: `${output}${command}: ${error.message}` }))
    child.on('exit', (code) => resolve({ code, output }))
  })
}

// The fuzz crate is a workspace of its own, with its own (ignored) Cargo.lock: resolved on its
// own, it takes the newest versions semver allows, not those the addon ships (hyper, redis,
// rustls, lru... drifted). Starting it as a copy of the addon's lock pins every dependency they
// share; cargo only adds the fuzz crate's own (libfuzzer-sys, arbitrary).
copyFileSync(fileURLToPath(new URL('../Cargo.lock', import.meta.url)), `${fuzzDir}Cargo.lock`)

// Built once, up front (the runs below then find them built): a build that fails says so here.
console.log(`fuzz: building ${chosen.join(', ')} (cargo +nightly fuzz build -O)...`)
const build = await run('cargo', ['+nightly', 'fuzz', 'build', '-O', ...(chosen.length === 1 ? [chosen[0]] : [])])
if (build.code !== 0) {
  console.log(build.output.split('\n').slice(-60).join('\n'))
  console.error('fuzz: the build failed')
  process.exit(1)
}

const results = []
for (const target of chosen) {
  const corpus = `corpus/${target}`
  mkdirSync(`${fuzzDir}${corpus}`, { recursive: true })
  const seeds = existsSync(`${fuzzDir}seeds/${target}`) ? [`seeds/${target}`] : []
  process.stdout.write(`fuzz: ${target} for ${seconds} s... `)
  const started = Date.now()
  const { code, output } = await run('cargo', ['+nightly', 'fuzz', 'run', '-O', target, corpus, ...seeds, '--', `-max_total_time=${seconds}`, '-timeout=10', '-rss_limit_mb=4096'])
  const runs = Number(/Done (\d+) runs/.exec(output)?.[1] ?? /#(\d+)\s+DONE/.exec(output)?.[1] ?? NaN)
  const coverage = /cov: (\d+)/g
  let cov
  for (let m; (m = coverage.exec(output)); ) cov = Number(m[1])
  const artifacts = existsSync(`${fuzzDir}artifacts/${target}`) ? readdirSync(`${fuzzDir}artifacts/${target}`) : []
  const result = { target, seconds: Math.round((Date.now() - started) / 1000), runs, coverage: cov, corpus: readdirSync(`${fuzzDir}${corpus}`).length, findings: artifacts.length, exit: code }
  results.push(result)
  console.log(code === 0 && artifacts.length === 0 ? `${runs.toLocaleString('en-US')} runs, no findings` : 'FAILED')
  if (code !== 0) console.log(output.split('\n').slice(-40).join('\n'))
}
console.table(results)
process.exitCode = results.every((r) => r.exit === 0 && r.findings === 0) ? 0 : 1
