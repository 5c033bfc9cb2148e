// `npm run build:cross`: builds the Linux binaries this x64 glibc machine cannot build natively,
// with napi-rs's cross compilation (cargo-zigbuild, zig as the C compiler and linker): the addon
// into its platform packages, and the standalone server as static executables into dist/; then
// checks them (scripts/check-binaries.mjs).
//
//   node scripts/build-cross.mjs [--static-only] [--addon-only | --server-only] [target ...]
//
// Addon targets (default: these three; x86_64-unknown-linux-gnu when named):
//   aarch64-unknown-linux-gnu  -> npm/linux-arm64-gnu/weather-cache.linux-arm64-gnu.node
//   x86_64-unknown-linux-musl  -> npm/linux-x64-musl/weather-cache.linux-x64-musl.node
//   aarch64-unknown-linux-musl -> npm/linux-arm64-musl/weather-cache.linux-arm64-musl.node
// Server targets (default: both; a named musl target builds both the addon and the server):
//   x86_64-unknown-linux-musl  -> dist/weather-cache-server-x86_64-unknown-linux-musl
//   aarch64-unknown-linux-musl -> dist/weather-cache-server-aarch64-unknown-linux-musl
// each with its checksum beside it (`<file>.sha256`, in `sha256sum -c` format). musl's libc is
// linked in (Rust's musl targets are static; zig links them as plain static executables): the
// server runs on any Linux of its CPU, in a `FROM scratch` image (Containerfile) too.
// glibc targets are built against glibc 2.28 (the `.2.28` suffix that cargo-zigbuild passes to
// zig), so they load on any glibc from 2.28 (Debian 10, RHEL 8, Amazon Linux 2023) on.
//
// Tools, pinned, installed on first use into $WEATHER_CACHE_TOOLS (default
// ~/.cache/weather-cache): a Python venv with PyPI's `ziglang` and `cargo-zigbuild`; the Rust
// standard libraries of the three targets come from `rustup target add`. Cargo's output goes to
// $CARGO_TARGET_DIR (default target/cross, apart from the native build's target/).
import { execFileSync, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const ZIG = '0.14.1'
const CARGO_ZIGBUILD = '0.24.0'
const GLIBC = '2.28'
const TARGETS = {
  'aarch64-unknown-linux-gnu': 'linux-arm64-gnu',
  'x86_64-unknown-linux-musl': 'linux-x64-musl',
  'aarch64-unknown-linux-musl': 'linux-arm64-musl',
  // Only when named: the release workflow builds it this way (glibc 2.28); here `npm run build`
  // makes the host's own build, which needs this machine's newer glibc.
  'x86_64-unknown-linux-gnu': 'linux-x64-gnu',
}
const DEFAULT_TARGETS = ['aarch64-unknown-linux-gnu', 'x86_64-unknown-linux-musl', 'aarch64-unknown-linux-musl']
// The standalone server is built only static: one file that runs on every Linux of its CPU.
const SERVER_TARGETS = ['x86_64-unknown-linux-musl', 'aarch64-unknown-linux-musl']
// TLS is rustls on ring: none of these may be in the build of any target.
const FORBIDDEN_CRATES = ['aws-lc-sys', 'aws-lc-rs', 'openssl-sys', 'openssl', 'native-tls']

const root = fileURLToPath(new URL('..', import.meta.url))
const tools = process.env.WEATHER_CACHE_TOOLS || join(homedir(), '.cache', 'weather-cache')
const venv = join(tools, 'cross-tools')
const targetDir = process.env.CARGO_TARGET_DIR || join(root, 'target', 'cross')
const stagingDir = join(targetDir, 'napi-out')
const distDir = join(root, 'dist')
const args = process.argv.slice(2)
const FLAGS = ['--static-only', '--addon-only', '--server-only']
for (const a of args) if (a.startsWith('--') && !FLAGS.includes(a)) fail(`unknown flag ${a} (known: ${FLAGS.join(', ')})`)
const addonOnly = args.includes('--addon-only')
const serverOnly = args.includes('--server-only')
if (addonOnly && serverOnly) fail('--addon-only and --server-only exclude each other')
const targets = args.filter((a) => !a.startsWith('--'))
for (const t of targets) if (!(t in TARGETS)) fail(`unknown target ${t} (known: ${Object.keys(TARGETS).join(', ')})`)
if (serverOnly) for (const t of targets) if (!SERVER_TARGETS.includes(t)) fail(`--server-only: the server is built for ${SERVER_TARGETS.join(' and ')} only, not ${t}`)
const addonTargets = serverOnly ? [] : targets.length ? targets : DEFAULT_TARGETS
const serverTargets = addonOnly ? [] : targets.length ? targets.filter((t) => SERVER_TARGETS.includes(t)) : SERVER_TARGETS
const selected = [...new Set([...addonTargets, ...serverTargets])]
const timings = []

function fail(message) {
  console.error(`build:cross: ${message}`)
  process.exit(1)
}

function run(command, argv, options = {}) {
  console.log(`$ ${command} ${argv.join(' ')}`)
  const result = spawnSync(command, argv, { stdio: 'inherit', cwd: root, ...options })
  if (result.error) fail(`${command}: ${result.error.message}`)
  if (result.status !== 0) fail(`${command} ${argv.join(' ')} exited with ${result.status}`)
}

function timed(what, fn) {
  const started = Date.now()
  const value = fn()
  timings.push([what, (Date.now() - started) / 1000])
  return value
}

if (process.platform !== 'linux' || process.arch !== 'x64') {
  fail(`runs on linux-x64 only (this is ${process.platform}-${process.arch}); the release workflow builds the rest`)
}

// 1. zig and cargo-zigbuild from PyPI, pinned, in a venv of their own.
timed('tools (venv, ziglang, cargo-zigbuild, rustup targets)', () => {
  const python = join(venv, 'bin', 'python')
  if (!existsSync(python)) run('python3', ['-m', 'venv', venv])
  const installed = spawnSync(python, ['-m', 'pip', 'freeze'], { encoding: 'utf8' }).stdout || ''
  if (!installed.includes(`ziglang==${ZIG}\n`) || !installed.includes(`cargo-zigbuild==${CARGO_ZIGBUILD}\n`)) {
    run(python, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', `ziglang==${ZIG}`, `cargo-zigbuild==${CARGO_ZIGBUILD}`])
  }
  // napi-rs looks for `zig` on PATH; the wheel ships it inside the package.
  const zig = join(venv, 'bin', 'zig')
  const shipped = execFileSync(python, ['-c', 'import ziglang, os; print(os.path.join(os.path.dirname(ziglang.__file__), "zig"))'], {
    encoding: 'utf8',
  }).trim()
  rmSync(zig, { force: true })
  symlinkSync(shipped, zig)
  // 2. The targets' standard libraries.
  const have = execFileSync('rustup', ['target', 'list', '--installed'], { encoding: 'utf8', cwd: root }).split('\n')
  const missing = selected.filter((t) => !have.includes(t))
  if (missing.length) run('rustup', ['target', 'add', ...missing])
})
const env = { ...process.env, PATH: `${join(venv, 'bin')}:${process.env.PATH}`, CARGO_TARGET_DIR: targetDir }
console.log(`zig ${execFileSync('zig', ['version'], { env, encoding: 'utf8' }).trim()}, cargo-zigbuild ${CARGO_ZIGBUILD}, cargo target dir ${targetDir}`)

// 3. TLS stays on ring for every target.
timed('dependency check (cargo tree)', () => {
  for (const target of selected) {
    for (const crate of FORBIDDEN_CRATES) {
      const result = spawnSync('cargo', ['tree', '--target', target, '-e', 'normal,build', '-i', crate], { cwd: root, env, encoding: 'utf8' })
      const absent = /did not match any packages/.test(result.stderr) || (result.status === 0 && !result.stdout.trim())
      if (!absent) fail(`${crate} is in the build for ${target}:\n${result.stdout}${result.stderr}`)
    }
    const ring = spawnSync('cargo', ['tree', '--target', target, '-e', 'normal', '-i', 'ring', '--depth', '0'], { cwd: root, env, encoding: 'utf8' })
    if (ring.status !== 0) fail(`ring is not in the build for ${target}:\n${ring.stderr}`)
  }
  console.log(`dependencies: ring, and none of ${FORBIDDEN_CRATES.join(', ')}, for ${selected.join(', ')}`)
})

// 4. Build each target into a staging dir (napi also writes index.d.ts there), then copy the
// .node into its platform package.
const napi = join(root, 'node_modules', '.bin', 'napi')
const built = []
for (const target of addonTargets) {
  const platform = TARGETS[target]
  const requested = target.endsWith('-gnu') ? `${target}.${GLIBC}` : target
  const out = join(stagingDir, platform)
  rmSync(out, { recursive: true, force: true })
  mkdirSync(out, { recursive: true })
  timed(`napi build ${requested}`, () =>
    run(napi, ['build', '--platform', '--release', '-x', '--target', requested, '--output-dir', out, '--no-js', '--target-dir', targetDir], { env }),
  )
  const file = `weather-cache.${platform}.node`
  if (!existsSync(join(out, file))) fail(`napi build left no ${file} in ${out}`)
  const dest = join(root, 'npm', platform, file)
  copyFileSync(join(out, file), dest)
  built.push(dest)
  console.log(`build:cross: ${relative(root, dest)}`)
}

// 5. The standalone server, static, with its checksum, in the addon's target dir (the crates
// both use with the same features are built once).
for (const target of serverTargets) {
  timed(`cargo zigbuild weather-cache-server ${target}`, () =>
    run('cargo', ['zigbuild', '--release', '--locked', '-p', 'weather-cache-server', '--bin', 'weather-cache-server', '--target', target], { env }),
  )
  const name = `weather-cache-server-${target}`
  const dest = join(distDir, name)
  mkdirSync(distDir, { recursive: true })
  copyFileSync(join(targetDir, target, 'release', 'weather-cache-server'), dest)
  const sha256 = createHash('sha256').update(readFileSync(dest)).digest('hex')
  writeFileSync(`${dest}.sha256`, `${sha256}  ${name}\n`)
  built.push(dest)
  console.log(`build:cross: ${relative(root, dest)} (sha256 ${sha256})`)
}

// 6. Check what was built.
timed('check-binaries', () =>
  run(process.execPath, [join(root, 'scripts', 'check-binaries.mjs'), ...args.filter((a) => a === '--static-only'), ...built.map((f) => relative(root, f))]),
)

console.log('\nbuild:cross timings:')
for (const [what, seconds] of timings) console.log(`  ${what}: ${seconds.toFixed(1)} s`)
console.log(`  total: ${timings.reduce((sum, [, s]) => sum + s, 0).toFixed(1)} s`)
