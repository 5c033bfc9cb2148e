// lib/binding.js, the loader in front of napi-rs's generated index.js: a binary that is there
// but will not load (damaged, another libc, a missing symbol) is ERR_WEATHER_CACHE_BINARY_LOAD,
// naming the file and quoting dlopen; no binary at all is ERR_WEATHER_CACHE_BINARY_MISSING,
// naming the package for this platform with its libc. Each case loads in a child process, from
// the repo (with NAPI_RS_NATIVE_LIBRARY_PATH) or from a temp copy of the loader.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { copyFileSync, mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { fileURLToPath } from 'node:url'

import { needs } from './needs.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))
// Real path: module resolution reports real paths (macOS's tmpdir is behind a symlink).
const work = realpathSync(mkdtempSync(join(tmpdir(), 'weather-cache-loader-')))
after(() => rmSync(work, { recursive: true, force: true }))

const { platform, arch } = process
const glibc = platform === 'linux' && Boolean(process.report.getReport().header.glibcVersionRuntime)
const abi = platform === 'linux' ? (glibc ? '-gnu' : '-musl') : platform === 'win32' ? '-msvc' : ''
const target = `${platform}-${arch}${abi}`
const packageName = `weather-cache-${target}`
const binaryName = `weather-cache.${target}.node`
// The cases built with cc make Linux ELF objects (-soname, a musl libc's name): elsewhere they
// do not apply; on Linux they need a C compiler (CI has one: cargo links with it).
const notLinux = platform !== 'linux' && 'ELF objects: Linux only'
const cc = platform === 'linux' && spawnSync('cc', ['--version']).status === 0
const CC_MISSING = 'cc (a C compiler) is not installed'

/** Requires `<dir>/lib/binding.js` in a child Node; returns what it threw (or `{ loaded: true }`). */
function load(dir, env = {}) {
  const probe = `try { require(${JSON.stringify(join(dir, 'lib', 'binding.js'))}); console.log(JSON.stringify({ loaded: true })) }
    catch (e) { console.log(JSON.stringify({ code: e.code, file: e.file, package: e.package, message: e.message, dlopenMessage: e.dlopenMessage })) }`
  const childEnv = { ...process.env, ...env }
  if (!('NAPI_RS_NATIVE_LIBRARY_PATH' in env)) delete childEnv.NAPI_RS_NATIVE_LIBRARY_PATH
  const result = spawnSync(process.execPath, ['-e', probe], { encoding: 'utf8', env: childEnv })
  assert.equal(result.status, 0, result.stderr)
  return JSON.parse(result.stdout.trim().split('\n').pop())
}

/** The system's own message for loading `file`, from this process (a failed dlopen leaves nothing). */
function dlopenMessage(file) {
  try {
    process.dlopen({ exports: {} }, file)
  } catch (error) {
    return error.message
  }
  assert.fail(`${file} loaded`)
}

/** A copy of the package's loader files, without any binary. */
function loaderCopy(name) {
  const dir = join(work, name)
  mkdirSync(join(dir, 'lib'), { recursive: true })
  for (const f of ['index.js', 'package.json', 'lib/binding.js']) copyFileSync(join(root, f), join(dir, f))
  return dir
}

function corrupt(file) {
  writeFileSync(file, Buffer.concat([Buffer.from('not an ELF file, a damaged download\n'), Buffer.alloc(4096, 0xa5)]))
  return file
}

/** A real shared object built with cc, so dlopen fails the way it does on a real system. */
function sharedObject(dir, name, source, linkArgs = []) {
  const c = join(dir, `${name}.c`)
  const out = join(dir, name)
  writeFileSync(c, source)
  const result = spawnSync('cc', ['-shared', '-fPIC', '-o', out, c, ...linkArgs], { encoding: 'utf8' })
  assert.equal(result.status, 0, result.stderr)
  return out
}

function assertLoadError(outcome, file) {
  assert.equal(outcome.code, 'ERR_WEATHER_CACHE_BINARY_LOAD', outcome.message)
  assert.equal(outcome.file, file)
  assert.ok(outcome.message.includes(file), `names the file:\n${outcome.message}`)
  const system = dlopenMessage(file)
  assert.ok(outcome.message.includes(system), `quotes dlopen's "${system}":\n${outcome.message}`)
  assert.equal(outcome.dlopenMessage, system)
  assert.doesNotMatch(outcome.message, /npm has a bug/)
}

test('a corrupt .node named by NAPI_RS_NATIVE_LIBRARY_PATH: ERR_WEATHER_CACHE_BINARY_LOAD with the file and dlopen text', () => {
  const file = corrupt(join(work, 'corrupt-override.node'))
  const outcome = load(root, { NAPI_RS_NATIVE_LIBRARY_PATH: file })
  assertLoadError(outcome, file)
  assert.match(outcome.message, /NAPI_RS_NATIVE_LIBRARY_PATH/)
})

test('NAPI_RS_NATIVE_LIBRARY_PATH naming no file: ERR_WEATHER_CACHE_BINARY_MISSING that says so', () => {
  const file = join(work, 'nowhere', 'weather-cache.node')
  const outcome = load(root, { NAPI_RS_NATIVE_LIBRARY_PATH: file })
  assert.equal(outcome.code, 'ERR_WEATHER_CACHE_BINARY_MISSING')
  assert.ok(outcome.message.includes(file), outcome.message)
})

test(`no binary at all: ERR_WEATHER_CACHE_BINARY_MISSING naming "${packageName}"`, () => {
  const dir = loaderCopy('missing')
  const outcome = load(dir)
  assert.equal(outcome.code, 'ERR_WEATHER_CACHE_BINARY_MISSING', outcome.message)
  assert.equal(outcome.package, packageName)
  assert.ok(outcome.message.includes(`"${packageName}"`), outcome.message)
  assert.match(outcome.message, /was not installed/)
  if (platform === 'linux') assert.match(packageName, glibc ? /-gnu$/ : /-musl$/)
})

test('the platform package installed without its binary: ERR_WEATHER_CACHE_BINARY_MISSING naming where it is', () => {
  const dir = loaderCopy('empty-package')
  const pkg = join(dir, 'node_modules', packageName)
  mkdirSync(pkg, { recursive: true })
  writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: packageName, version: '0.1.0', main: binaryName }))
  const outcome = load(dir)
  assert.equal(outcome.code, 'ERR_WEATHER_CACHE_BINARY_MISSING', outcome.message)
  assert.ok(outcome.message.includes(pkg), outcome.message)
  assert.match(outcome.message, /holds no binary/)
})

test('a corrupt local build next to index.js: ERR_WEATHER_CACHE_BINARY_LOAD', () => {
  const dir = loaderCopy('corrupt-local')
  const file = corrupt(join(dir, binaryName))
  assertLoadError(load(dir), file)
})

test('a corrupt binary in the platform package: ERR_WEATHER_CACHE_BINARY_LOAD naming the file and the package', () => {
  const dir = loaderCopy('corrupt-package')
  const pkg = join(dir, 'node_modules', packageName)
  mkdirSync(pkg, { recursive: true })
  writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: packageName, version: '0.1.0', main: binaryName }))
  const file = corrupt(join(pkg, binaryName))
  const outcome = load(dir)
  assertLoadError(outcome, file)
  assert.ok(outcome.message.includes(`"${packageName}"`), outcome.message)
})

test('a binary that needs another libc (musl) here: the file is named though dlopen names only the library', { skip: notLinux }, (t) => {
  if (!needs(t, cc, CC_MISSING)) return
  const dir = loaderCopy('other-libc')
  // A stand-in for musl's libc, only there at link time: the .node then NEEDs it, as a musl
  // build of the addon NEEDs musl's libc on a glibc system.
  const stub = sharedObject(dir, 'libc.musl-x86_64.so.1', 'int weather_cache_stub(void) { return 0; }\n', ['-Wl,-soname,libc.musl-x86_64.so.1'])
  const file = sharedObject(dir, binaryName, 'int weather_cache_stub(void);\nint weather_cache_entry(void) { return weather_cache_stub(); }\n', [stub])
  rmSync(stub)
  const outcome = load(dir)
  assertLoadError(outcome, file)
  assert.match(outcome.dlopenMessage, /libc\.musl-x86_64\.so\.1/)
  assert.ok(!outcome.dlopenMessage.includes(file), 'dlopen itself does not name the file here')
})

test('a binary with a missing symbol: ERR_WEATHER_CACHE_BINARY_LOAD with dlopen\'s "undefined symbol"', { skip: notLinux }, (t) => {
  if (!needs(t, cc, CC_MISSING)) return
  const dir = loaderCopy('missing-symbol')
  // A data reference is bound at load time, so dlopen (lazy for functions) fails at once.
  const file = sharedObject(dir, binaryName, 'extern int weather_cache_absent;\nint weather_cache_read(void) { return weather_cache_absent; }\n')
  const outcome = load(dir)
  assertLoadError(outcome, file)
  assert.match(outcome.dlopenMessage, /undefined symbol: weather_cache_absent/)
})

test('the real binary still loads through the loader', () => {
  assert.deepEqual(load(root), { loaded: true })
})
