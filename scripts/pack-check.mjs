// `npm run pack:check`: what a user gets from `npm install weather-cache`, checked end to end.
// Builds the release binary, packs the main package and this platform's package with `npm pack`,
// installs both tarballs offline into a fresh project and uses them there; runs the Dashboard
// example's tests (weather-cache/testing) under node:test and Bun in projects that installed the
// tarballs with npm and with Bun; then proves that the main package alone fails with a message
// naming the missing platform package.
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

import { API_KEY, startUpstream } from '../__test__/upstream.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))
const platformDir = join(root, 'npm', 'linux-x64-gnu')
const binary = 'weather-cache.linux-x64-gnu.node'
const work = mkdtempSync(join(tmpdir(), 'weather-cache-pack-'))
const npmEnv = { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' }
// The child test runs are runs of their own, not parts of a test that started this script.
delete npmEnv.NODE_TEST_CONTEXT
const bun = join(root, 'node_modules', '.bin', 'bun')

if (process.platform !== 'linux' || process.arch !== 'x64') {
  console.log(`pack:check builds and installs linux-x64-gnu only; skipped on ${process.platform}-${process.arch}`)
  process.exit(0)
}

async function step(title, fn) {
  process.stdout.write(`pack:check: ${title} ... `)
  const result = await fn()
  console.log(typeof result === 'string' ? result : 'ok')
  return result
}

function run(command, args, cwd) {
  const result = spawnSync(command, args, { cwd, env: npmEnv, encoding: 'utf8' })
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(' ')} failed in ${cwd}\n${result.stdout}\n${result.stderr}`)
  }
  return result
}

/** Runs Node asynchronously: the loopback upstream lives in this process and must keep serving. */
function node(args, cwd, command = process.execPath) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: npmEnv })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('error', reject)
    child.on('exit', (status) => resolve({ status, stdout, stderr }))
  })
}

/** `npm pack` without lifecycle scripts (the binary is built already); returns tarball and files. */
function pack(dir) {
  const { stdout } = run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], dir)
  const [info] = JSON.parse(stdout.slice(stdout.indexOf('[')))
  return { tarball: join(work, info.filename), files: info.files.map((f) => f.path).sort(), size: info.size }
}

function freshProject(name, fields = {}) {
  const dir = join(work, name)
  mkdirSync(dir)
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, version: '1.0.0', private: true, ...fields }))
  return dir
}

/** The Dashboard example's handlers and tests, copied into a project (an ES module one). */
function copyExample(dir) {
  for (const part of ['src', 'test']) cpSync(join(root, 'examples', 'dashboard', part), join(dir, part), { recursive: true })
}

/** Runs one of the example's test files; returns the runner's summary line. */
async function exampleTests(dir, runner) {
  const { status, stdout, stderr } =
    runner === 'node' ? await node(['--test', 'test/dashboard-weather.node.mjs'], dir) : await node(['test', './test'], dir, bun)
  const output = `${stdout}${stderr}`
  const passed = runner === 'node' ? /^# pass (\d+)$/m.exec(output)?.[1] : /^ (\d+) pass$/m.exec(output)?.[1]
  if (status !== 0 || passed !== '3') throw new Error(`${runner}: the example's tests failed:\n${output}`)
  return `${passed} tests passed under ${runner === 'node' ? 'node:test' : 'Bun'}`
}

function walk(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)],
  )
}

const upstream = await startUpstream()
try {
  await step('build the release binary', () => {
    execFileSync('npx', ['napi', 'build', '--platform', '--release'], { cwd: root, stdio: 'ignore' })
    return `${binary}: ${(statSync(join(root, binary)).size / 1024 / 1024).toFixed(2)} MiB`
  })
  // What `napi artifacts` does in a release workflow, for the one target built here (the
  // command itself insists on finding every configured target).
  await step('place it in npm/linux-x64-gnu', () => copyFileSync(join(root, binary), join(platformDir, binary)))

  const main = await step('npm pack the main package', () => pack(root))
  const platform = await step('npm pack weather-cache-linux-x64-gnu', () => pack(platformDir))
  await step('tarball contents', () => {
    const expectMain = ['LICENSE', 'README.md', 'index.d.ts', 'index.js', 'main.js', 'package.json', 'testing.d.ts']
    for (const file of [...expectMain, 'lib/testing.mjs']) if (!main.files.includes(file)) throw new Error(`main tarball lacks ${file}`)
    const unexpected = main.files.filter((f) => !expectMain.includes(f) && !f.startsWith('bin/') && !f.startsWith('lib/'))
    if (unexpected.length) throw new Error(`main tarball holds ${unexpected.join(', ')}`)
    if (JSON.stringify(platform.files) !== JSON.stringify(['README.md', binary, 'package.json'].sort())) {
      throw new Error(`platform tarball holds ${platform.files.join(', ')}`)
    }
    return `main ${main.files.length} files (${(main.size / 1024).toFixed(0)} KiB), platform ${(platform.size / 1024 / 1024).toFixed(2)} MiB packed`
  })

  const app = freshProject('app')
  await step('install both tarballs offline into a fresh project', () => {
    run('npm', ['install', '--offline', '--no-audit', '--no-fund', main.tarball, platform.tarball], app)
  })
  await step('require() and getWeather against a loopback upstream', async () => {
    const script = `
      const { WeatherService, weatherService, distanceKm } = require('weather-cache')
      const service = new WeatherService({ apiKey: ${JSON.stringify(API_KEY)}, baseUrl: ${JSON.stringify(upstream.url)} })
      service.getWeather(null, 'pack-check', 48.85, 2.35).then((w) => {
        if (!w || typeof w.tempC !== 'number' || !(weatherService instanceof WeatherService)) process.exit(1)
        console.log(JSON.stringify(w))
      })`
    const { status, stdout, stderr } = await node(['-e', script], app)
    if (status !== 0) throw new Error(`require() check failed:\n${stdout}\n${stderr}`)
    return stdout.trim()
  })
  await step('import() of the named exports', async () => {
    const script = `import { WeatherService, bucketKey } from 'weather-cache'
      if (typeof WeatherService !== 'function' || bucketKey(0, 180) !== '0.00000:-180.00000') process.exit(1)`
    const { status, stderr } = await node(['--input-type=module', '-e', script], app)
    if (status !== 0) throw new Error(`import check failed:\n${stderr}`)
  })
  await step('the installed `weather-cache demo` runs offline', async () => {
    const bin = join(app, 'node_modules', '.bin', 'weather-cache')
    const { status, stdout, stderr } = await node([bin, 'demo', '--drones', '50', '--minutes', '2', '--json'], app)
    if (status !== 0) throw new Error(`demo failed:\n${stderr}`)
    const { requests, upstreamCalls } = JSON.parse(stdout)
    return `${requests} requests, ${upstreamCalls} upstream calls`
  })
  await step('the installed tree holds no Rust sources or build artefacts', () => {
    const installed = ['weather-cache', 'weather-cache-linux-x64-gnu'].flatMap((p) => walk(join(app, 'node_modules', p)))
    const forbidden = installed.filter((f) =>
      /\.rs$|Cargo\.(toml|lock)$|build\.rs$|\/(src|target|__test__|scripts|npm)\/|rustfmt|\.tgz$/.test(relative(app, f)),
    )
    if (forbidden.length) throw new Error(`found ${forbidden.map((f) => relative(app, f)).join(', ')}`)
    const nodes = installed.filter((f) => f.endsWith('.node'))
    if (nodes.length !== 1 || !nodes[0].includes('weather-cache-linux-x64-gnu')) throw new Error(`binaries: ${nodes}`)
    return `${installed.length} files`
  })

  // What a Dashboard developer does with the tarballs: install them, test with weather-cache/testing.
  const dashboard = freshProject('dashboard', { type: 'module' })
  await step('npm: install the tarballs into a project with the Dashboard example', () => {
    run('npm', ['install', '--offline', '--no-audit', '--no-fund', main.tarball, platform.tarball], dashboard)
    copyExample(dashboard)
    if (!existsSync(join(dashboard, 'node_modules', 'weather-cache', 'testing.d.ts'))) throw new Error('testing.d.ts was not installed')
  })
  await step('npm: the example tests weather-cache/testing under node:test', () => exampleTests(dashboard, 'node'))
  await step('npm: the example tests weather-cache/testing under Bun', () => {
    if (spawnSync(bun, ['--version']).status !== 0) throw new Error(`${bun} does not run (installed with --ignore-scripts?)`)
    return exampleTests(dashboard, 'bun')
  })
  const bunProject = freshProject('dashboard-bun', { type: 'module' })
  await step('bun add the tarballs into a project with the Dashboard example', () => {
    // No registry needed: the platform package comes from its tarball, and the other platforms'
    // optional packages, which no registry has yet, are skipped with a warning.
    run(bun, ['add', '--no-cache', main.tarball, platform.tarball], bunProject)
    copyExample(bunProject)
  })
  await step('bun: the example tests weather-cache/testing under Bun', () => exampleTests(bunProject, 'bun'))

  const alone = freshProject('main-only')
  await step('without the platform package, require() names it', async () => {
    run('npm', ['install', '--offline', '--no-audit', '--no-fund', '--omit=optional', main.tarball], alone)
    const { status, stderr } = await node(['-e', "require('weather-cache')"], alone)
    if (status === 0) throw new Error('require() succeeded without a binary')
    if (!stderr.includes('"weather-cache-linux-x64-gnu"') || !stderr.includes('ERR_WEATHER_CACHE_BINARY_MISSING')) {
      throw new Error(`unclear error:\n${stderr}`)
    }
    return stderr.split('\n').find((l) => l.includes('weather-cache: ')).trim()
  })
  console.log('pack:check: passed')
} finally {
  await upstream.close()
  rmSync(work, { recursive: true, force: true })
  rmSync(join(platformDir, binary), { force: true })
}
