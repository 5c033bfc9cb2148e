// `npm run check:binaries`: proves each built Linux binary is what its platform package says,
// and each standalone server binary is static and serves.
//
//   node scripts/check-binaries.mjs [--static-only] [file ...]
//
// With no files, it checks every `npm/linux-*/weather-cache.*.node` and every
// `dist/weather-cache-server-<target>` that exists. For each addon:
// - `readelf`: ELF class, type and machine match the package's `cpu`; the program interpreter
//   (a shared object has none) and the `NEEDED` libraries match its `libc`: a musl binary needs
//   no glibc library and no GLIBC_ symbol version, a gnu binary needs only glibc's libraries
//   and no GLIBC_ version newer than 2.28;
// - `file`'s description, and the size;
// - the honest loader: this machine's Node (x64, glibc) must refuse a binary of another libc or
//   CPU with ERR_WEATHER_CACHE_BINARY_LOAD, naming the file and quoting dlopen;
// - a real loader of the binary's own kind (unless --static-only): the gnu binaries in a Node of
//   their CPU (arm64: Debian's, under qemu-user-static; x64: this machine's), answering one
//   getWeather call from a loopback upstream, then passing __test__/core.test.mjs; the musl
//   binaries through musl's own dynamic loader (x64 natively, arm64 under qemu), which must
//   resolve every symbol they need. See dynamicCheck() below.
// For each server binary (`weather-cache-server-{x86_64,aarch64}-unknown-linux-musl`):
// - `readelf`: an ELF64 executable of its CPU with no program interpreter and no `NEEDED`
//   library (nothing is loaded at run time: it runs on any Linux, in a `FROM scratch` image);
//   `file` must call it statically linked; its `.sha256` beside it, when there, must match;
// - unless --static-only, it is run (x86_64 natively, aarch64 under qemu-user-static when this
//   is root or qemu is installed): `--version`, then as an operator runs it against a loopback
//   OpenWeather (scripts/server-smoke.mjs): /healthz, a weather answer from the network then from
//   the cache with one upstream call, exit 0 on SIGTERM.
// Any mismatch fails the run (exit 1) after the table is printed.
import { execFileSync, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { basename, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

import { smokeServer } from './server-smoke.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))
const MAX_GLIBC = [2, 28]
const MACHINE = { x64: 'Advanced Micro Devices X86-64', arm64: 'AArch64' }
const FILE_ARCH = { x64: 'x86-64', arm64: 'ARM aarch64' }
const GLIBC_LIBS = /^(libc\.so\.6|libm\.so\.6|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1|libgcc_s\.so\.1|ld-linux-(x86-64|aarch64)\.so\.[12])$/
const GNU_INTERP = { x64: '/lib64/ld-linux-x86-64.so.2', arm64: '/lib/ld-linux-aarch64.so.1' }
const MUSL_INTERP = { x64: '/lib/ld-musl-x86_64.so.1', arm64: '/lib/ld-musl-aarch64.so.1' }
const SERVER = /^weather-cache-server-(x86_64|aarch64)-unknown-linux-musl$/
const VERSION = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version
const tools = process.env.WEATHER_CACHE_TOOLS || join(homedir(), '.cache', 'weather-cache')
let qemuVersion = null

const args = process.argv.slice(2)
const staticOnly = args.includes('--static-only')
const files = args.filter((a) => !a.startsWith('--'))
const binaries = files.length ? files.map((f) => join(process.cwd(), f)) : defaultBinaries()
if (binaries.length === 0) {
  console.error('check-binaries: no npm/linux-*/weather-cache.*.node or dist/weather-cache-server-* found; run `npm run build:cross` first')
  process.exit(1)
}

const failures = []
const rows = []
for (const file of binaries) rows.push(check(file))

for (const row of rows.filter((r) => !r.expected.server && (r.expected.arch !== process.arch || r.expected.libc !== hostLibc()))) refusedHere(row)
for (const row of rows) {
  if (staticOnly) {
    row.loaded = 'skipped (--static-only)'
    continue
  }
  try {
    row.loaded = row.expected.server ? await runServer(row) : dynamicCheck(row)
  } catch (error) {
    row.loaded = 'FAILED'
    failures.push(`${row.name}: ${error.message}`)
  }
}

printTable(rows)
for (const row of rows) console.log(`file ${relative(root, row.file)}: ${row.fileOutput}`)
for (const row of rows) console.log(`${row.expected.server ? 'ran' : 'loaded'} ${basename(row.file)}: ${row.loaded}`)
if (qemuVersion) console.log(`emulator: ${qemuVersion}`)
for (const row of rows) if (row.refused) console.log(`refused on this ${process.arch}-${hostLibc()} Node: ${basename(row.file)}: ${row.refused}`)

if (failures.length) {
  console.error(`\ncheck-binaries: FAILED (${failures.length})`)
  for (const f of failures) console.error(`  - ${f}`)
  process.exit(1)
}
console.log(`\ncheck-binaries: ${rows.length} ${rows.length === 1 ? 'binary' : 'binaries'} passed`)

function defaultBinaries() {
  const npmDir = join(root, 'npm')
  const distDir = join(root, 'dist')
  const addons = readdirSync(npmDir)
    .filter((d) => d.startsWith('linux-'))
    .map((d) => join(npmDir, d, `weather-cache.${d}.node`))
    .filter((f) => existsSync(f))
  const servers = existsSync(distDir) ? readdirSync(distDir).filter((f) => SERVER.test(f)).map((f) => join(distDir, f)) : []
  return [...addons, ...servers]
}

/** What the file's name and its package.json promise: os, cpu (Node's arch) and libc. */
function expectationsFor(file) {
  const server = SERVER.exec(basename(file))
  if (server) return { arch: server[1] === 'x86_64' ? 'x64' : 'arm64', libc: 'static', server: true }
  const match = /weather-cache\.linux-(x64|arm64)-(gnu|musl)\.node$/.exec(basename(file))
  if (!match) throw new Error(`${file}: not a weather-cache.linux-<x64|arm64>-<gnu|musl>.node file`)
  const [, arch, libc] = match
  const manifest = join(root, 'npm', `linux-${arch}-${libc}`, 'package.json')
  const pkg = JSON.parse(readFileSync(manifest, 'utf8'))
  const fail = (what) => failures.push(`${relative(root, manifest)}: ${what}`)
  if (pkg.main !== basename(file)) fail(`main is ${pkg.main}, not ${basename(file)}`)
  if (String(pkg.os) !== 'linux') fail(`os is ${pkg.os}`)
  if (String(pkg.cpu) !== arch) fail(`cpu is ${pkg.cpu}, not ${arch}`)
  if (String(pkg.libc) !== (libc === 'gnu' ? 'glibc' : 'musl')) fail(`libc is ${pkg.libc}`)
  return { arch, libc, pkg: pkg.name }
}

function readelf(flags, file) {
  return execFileSync('readelf', [...flags, '--wide', file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
}

function check(file) {
  const name = relative(root, file)
  const expected = expectationsFor(file)
  const fail = (what) => failures.push(`${name}: ${what}`)
  const header = readelf(['-h'], file)
  const field = (label) => (new RegExp(`^\\s*${label}:\\s*(.+)$`, 'm').exec(header) || [])[1] || '?'
  const machine = field('Machine').trim()
  if (field('Class').trim() !== 'ELF64') fail(`class ${field('Class')}, expected ELF64`)
  if (expected.server) return checkServer(file, name, expected, machine, field('Type').trim(), fail)
  if (!/^DYN\b/.test(field('Type').trim())) fail(`type ${field('Type')}, expected DYN (a shared object)`)
  if (machine !== MACHINE[expected.arch]) fail(`machine ${machine}, expected ${MACHINE[expected.arch]}`)

  const interp = (/Requesting program interpreter: ([^\]]+)\]/.exec(readelf(['-l'], file)) || [])[1] || null
  const needed = [...readelf(['-d'], file).matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1])
  const versions = [...new Set([...readelf(['-V'], file).matchAll(/Name: (GLIBC_[0-9.]+)/g)].map((m) => m[1]))]
  const newest = versions.map((v) => v.slice(6).split('.').map(Number)).sort(compareVersions).pop() || null

  if (expected.libc === 'musl') {
    const glibc = needed.filter((n) => GLIBC_LIBS.test(n) && n !== 'libgcc_s.so.1')
    if (glibc.length) fail(`a musl binary needs glibc libraries: ${glibc.join(', ')}`)
    if (versions.length) fail(`a musl binary needs glibc symbol versions: ${versions.join(', ')}`)
    if (!needed.some((n) => /^libc\.(so|musl-[a-z0-9_]+\.so\.1)$/.test(n))) fail(`needs no musl libc (NEEDED: ${needed.join(', ') || 'none'})`)
    if (interp && interp !== MUSL_INTERP[expected.arch]) fail(`interpreter ${interp}, not musl's`)
  } else {
    const foreign = needed.filter((n) => !GLIBC_LIBS.test(n))
    if (foreign.length) fail(`needs libraries outside glibc: ${foreign.join(', ')}`)
    if (!needed.includes('libc.so.6')) fail(`does not need libc.so.6 (NEEDED: ${needed.join(', ') || 'none'})`)
    if (newest && compareVersions(newest, MAX_GLIBC) > 0) {
      fail(`needs GLIBC_${newest.join('.')}, newer than GLIBC_${MAX_GLIBC.join('.')}`)
    }
    if (interp && interp !== GNU_INTERP[expected.arch]) fail(`interpreter ${interp}, not glibc's`)
  }

  const fileOutput = execFileSync('file', ['-b', file], { encoding: 'utf8' }).trim()
  if (!fileOutput.includes('ELF 64-bit LSB shared object') || !fileOutput.includes(FILE_ARCH[expected.arch])) {
    fail(`file(1) says "${fileOutput}"`)
  }
  const bytes = statSync(file).size
  if (bytes < 100 * 1024) fail(`only ${bytes} bytes`)
  return { file, name, expected, machine, interp, needed, newest, bytes, fileOutput }
}

/**
 * A server binary: an executable (static-pie is a DYN without an interpreter) that asks the
 * kernel for nothing but itself: no PT_INTERP, no NEEDED, `file` says statically linked.
 */
function checkServer(file, name, expected, machine, type, fail) {
  if (!/^(EXEC|DYN)\b/.test(type)) fail(`type ${type}, expected an executable`)
  if (machine !== MACHINE[expected.arch]) fail(`machine ${machine}, expected ${MACHINE[expected.arch]}`)
  const interp = (/Requesting program interpreter: ([^\]]+)\]/.exec(readelf(['-l'], file)) || [])[1] || null
  if (interp) fail(`asks for a program interpreter (${interp}): not static`)
  const needed = [...readelf(['-d'], file).matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1])
  if (needed.length) fail(`needs shared libraries (${needed.join(', ')}): not static`)
  const fileOutput = execFileSync('file', ['-b', file], { encoding: 'utf8' }).trim()
  if (!/^ELF 64-bit LSB (executable|pie executable)/.test(fileOutput) || !/static(-pie)? linked|statically linked/.test(fileOutput) || !fileOutput.includes(FILE_ARCH[expected.arch])) {
    fail(`file(1) says "${fileOutput}"`)
  }
  const bytes = statSync(file).size
  if (bytes < 1024 * 1024) fail(`only ${bytes} bytes`)
  const sha256 = createHash('sha256').update(readFileSync(file)).digest('hex')
  if (existsSync(`${file}.sha256`)) {
    const [recorded, recordedName] = readFileSync(`${file}.sha256`, 'utf8').trim().split(/\s+/)
    if (recorded !== sha256 || recordedName !== basename(file)) fail(`${basename(file)}.sha256 says ${recorded} ${recordedName}, the file's is ${sha256}`)
  }
  return { file, name, expected, machine, interp, needed, newest: null, bytes, fileOutput, sha256 }
}

/** Runs a server binary: `--version`, then serving a loopback OpenWeather (scripts/server-smoke.mjs). */
async function runServer(row) {
  const started = Date.now()
  const emulator = row.expected.arch === process.arch ? [] : [qemu()]
  const [command, ...prefix] = [...emulator, row.file]
  const version = spawnSync(command, [...prefix, '--version'], { encoding: 'utf8', timeout: 60_000 })
  const printed = (version.stdout || '').trim()
  if (version.status !== 0 || printed !== `weather-cache-server ${VERSION}`) {
    throw new Error(`--version exited ${version.status} printing ${JSON.stringify(printed)} (expected "weather-cache-server ${VERSION}")\n${version.stderr}`)
  }
  const seen = await smokeServer(({ upstream, apiKeyFile }) => ({
    command,
    args: [...prefix, '--port', '0', '--upstream', upstream.url, '--api-key-file', apiKeyFile],
  }))
  return (
    `${emulator.length ? 'under qemu: ' : ''}--version "${printed}"; /healthz ${seen.healthz}; /v1/weather ${seen.first.condition} ${seen.first.tempC} °C ` +
    `(network, then ${seen.second.source}), ${seen.upstreamCalls} upstream call; SIGTERM: exit ${seen.exit.code} in ${seen.stopMs} ms ` +
    `(${((Date.now() - started) / 1000).toFixed(1)} s)`
  )
}

function compareVersions(a, b) {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] || 0) - (b[i] || 0)
    if (d) return d
  }
  return 0
}

function printTable(rows) {
  const table = [
    ['binary', 'machine', 'interpreter', 'NEEDED', 'newest GLIBC_', 'size'],
    ...rows.map((r) => [
      basename(r.file),
      r.machine,
      r.interp || (r.expected.server ? 'none (static)' : 'none (shared object)'),
      r.needed.join(' ') || 'none',
      r.newest ? r.newest.join('.') : 'none',
      `${(r.bytes / 1024 / 1024).toFixed(2)} MiB (${r.bytes} B)`,
    ]),
  ]
  console.log(table.map((cells) => `| ${cells.join(' | ')} |`).join('\n').replace(/\n/, `\n|${' --- |'.repeat(table[0].length)}\n`))
}

function hostLibc() {
  return process.report.getReport().header.glibcVersionRuntime ? 'gnu' : 'musl'
}

/** This machine's Node must refuse a binary built for another libc or CPU, and say why. */
function refusedHere(row) {
  const probe = `try { require(${JSON.stringify(join(root, 'lib', 'binding.js'))}); console.log(JSON.stringify({ loaded: true })) }
    catch (e) { console.log(JSON.stringify({ code: e.code, file: e.file, message: e.message, dlopenMessage: e.dlopenMessage })) }`
  const result = spawnSync(process.execPath, ['-e', probe], {
    encoding: 'utf8',
    env: { ...process.env, NAPI_RS_NATIVE_LIBRARY_PATH: row.file },
  })
  let outcome
  try {
    outcome = JSON.parse(result.stdout.trim().split('\n').pop())
  } catch {
    failures.push(`${row.name}: loading it here printed no result (${result.stderr.trim()})`)
    return
  }
  row.refused = outcome.loaded ? 'loaded (!)' : `${outcome.code}: ${(outcome.dlopenMessage || outcome.message).trim()}`
  if (outcome.code !== 'ERR_WEATHER_CACHE_BINARY_LOAD' || outcome.file !== row.file || !outcome.message.includes(row.file)) {
    failures.push(`${row.name}: loading it on ${process.arch}-${hostLibc()} did not fail with ERR_WEATHER_CACHE_BINARY_LOAD naming the file`)
  }
}

/**
 * Loads each binary with a real loader of its own kind, from Debian's packages unpacked into
 * directories of their own (so the machine's Node, libc and dpkg architectures stay as they
 * are), arm64 ones under qemu-user-static:
 * - gnu: a Node of its CPU (arm64: Debian's nodejs:arm64; x64: this machine's) loads it, makes
 *   one getWeather call against a loopback upstream running in that same process, then runs
 *   __test__/core.test.mjs;
 * - musl: musl's dynamic loader (Debian's `musl`), run as `ldd` (`--list`), loads the file and
 *   resolves every symbol it needs, or names each one it cannot.
 * No musl build of Node can be had from a registry here, so the musl binaries are not called.
 */
function dynamicCheck(row) {
  const { arch, libc } = row.expected
  const debArch = arch === 'x64' ? 'amd64' : 'arm64'
  // x64 gnu runs in this machine's own Node; the others need Debian's packages.
  const native = arch === 'x64' && libc === 'gnu'
  const sysroot = native ? null : debianRoot(debArch, libc === 'gnu' ? ['nodejs'] : ['musl'])
  const emulator = arch === 'x64' ? [] : [qemu(), '-L', sysroot]
  const nodeBinary = native ? process.execPath : sysroot && join(sysroot, 'usr/bin/node')
  const started = Date.now()
  const spawn = (argv, env = {}) => {
    const [command, ...rest] = [...emulator, ...argv]
    return spawnSync(command, rest, { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 300_000 })
  }
  const seconds = () => `${((Date.now() - started) / 1000).toFixed(1)} s`
  if (libc === 'musl') {
    const ldso = join(sysroot, 'lib', `${arch === 'x64' ? 'x86_64' : 'aarch64'}-linux-musl`, 'libc.so')
    const result = spawn([ldso, '--list', row.file])
    const errors = `${result.stdout}${result.stderr}`.split('\n').filter((l) => /^Error/.test(l))
    if (result.status !== 0 || errors.length) {
      failures.push(`${row.name}: musl's loader refused it (status ${result.status}):\n${errors.join('\n') || result.stderr}`)
      return 'musl loader: FAILED'
    }
    const version = (/Version ([0-9.]+)/.exec(spawn([ldso]).stderr) || [])[1] || '?'
    return `loaded by musl ${version}'s ld.so${emulator.length ? ' under qemu' : ''}, every symbol resolved`
  }
  const smoke = join(root, 'scripts', 'emulated-get-weather.mjs')
  const result = spawn([nodeBinary, smoke], { NAPI_RS_NATIVE_LIBRARY_PATH: row.file })
  let outcome = null
  try {
    outcome = JSON.parse((result.stdout || '').trim().split('\n').pop())
  } catch {}
  if (result.status !== 0 || !outcome || outcome.arch !== arch || !outcome.weather || outcome.upstreamCalls !== 1) {
    failures.push(`${row.name}: getWeather in an emulated ${arch} Node failed (status ${result.status} ${result.error || ''})\n${result.stdout}\n${result.stderr}`)
    return 'qemu getWeather: FAILED'
  }
  const smokeLine =
    `Node ${outcome.node} ${outcome.arch} (${native ? 'this machine' : 'Debian'}, glibc ${outcome.glibc})${emulator.length ? ' under qemu' : ''}: ` +
    `getWeather -> ${JSON.stringify(outcome.weather)}, ${outcome.upstreamCalls} upstream call (${seconds()})`
  // The core suite too, run as a plain script: `node --test` would spawn a child from
  // process.execPath, an arm64 file this machine cannot exec without a binfmt_misc handler.
  const suiteStarted = Date.now()
  const suite = spawn([nodeBinary, join(root, '__test__', 'core.test.mjs')], { NAPI_RS_NATIVE_LIBRARY_PATH: row.file })
  const count = (what) => Number((new RegExp(`^# ${what} (\\d+)$`, 'm').exec(suite.stdout || '') || [])[1])
  if (suite.status !== 0 || !(count('pass') > 0) || count('fail') !== 0) {
    failures.push(`${row.name}: __test__/core.test.mjs in an emulated ${arch} Node failed (status ${suite.status})\n${suite.stdout}\n${suite.stderr}`)
    return `${smokeLine}; core tests: FAILED`
  }
  return `${smokeLine}; __test__/core.test.mjs: ${count('pass')} passed, 0 failed (${((Date.now() - suiteStarted) / 1000).toFixed(1)} s)`
}

function qemu() {
  const path = '/usr/bin/qemu-aarch64-static'
  if (!existsSync(path)) {
    if (!process.getuid || process.getuid() !== 0) {
      throw new Error('qemu-user-static is not installed and this is not root: apt-get install qemu-user-static, or pass --static-only')
    }
    console.log('check-binaries: installing qemu-user-static (Debian)')
    aptGet(['update', '-qq'])
    aptGet(['install', '-y', '-qq', '--no-install-recommends', 'qemu-user-static'])
  }
  if (!qemuVersion) qemuVersion = execFileSync(path, ['--version'], { encoding: 'utf8' }).split('\n')[0]
  return path
}

function aptGet(args) {
  const result = spawnSync('apt-get', args, { encoding: 'utf8', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } })
  if (result.status !== 0) throw new Error(`apt-get ${args.join(' ')} failed:\n${result.stdout}\n${result.stderr}`)
  return result.stdout
}

/**
 * Debian packages of one architecture and what they depend on, unpacked with `dpkg -x` into a
 * directory of their own. Apt reads the machine's sources but keeps its lists, cache and an
 * empty dpkg status there: nothing is installed.
 */
function debianRoot(debArch, packages) {
  const base = join(tools, `debian-${debArch}-${packages.join('-')}`)
  const sysroot = join(base, 'root')
  const done = join(base, 'unpacked')
  if (existsSync(done)) return sysroot
  console.log(`check-binaries: unpacking Debian's ${packages.map((p) => `${p}:${debArch}`).join(', ')} into ${sysroot}`)
  rmSync(base, { recursive: true, force: true })
  for (const d of ['state/lists/partial', 'cache/archives/partial', 'preferences.d', 'root']) mkdirSync(join(base, d), { recursive: true })
  writeFileSync(join(base, 'status'), '')
  const options = [
    '-o', `APT::Architecture=${debArch}`,
    '-o', `APT::Architectures::=${debArch}`,
    '-o', `Dir::State=${join(base, 'state')}`,
    '-o', `Dir::State::status=${join(base, 'status')}`,
    '-o', `Dir::Cache=${join(base, 'cache')}`,
    '-o', `Dir::Etc::preferencesparts=${join(base, 'preferences.d')}`,
  ]
  aptGet([...options, 'update', '-qq'])
  aptGet([...options, 'install', '--download-only', '--no-install-recommends', '-y', '-qq', ...packages])
  const archives = join(base, 'cache', 'archives')
  for (const deb of readdirSync(archives).filter((f) => f.endsWith('.deb'))) execFileSync('dpkg', ['-x', join(archives, deb), sysroot])
  rmSync(join(base, 'cache'), { recursive: true, force: true })
  rmSync(join(base, 'state'), { recursive: true, force: true })
  writeFileSync(done, packages.join('\n'))
  return sysroot
}
