// Loads the native addon through the loader napi-rs generates (index.js). When that fails, it
// says which of two things happened, with its own code:
// - ERR_WEATHER_CACHE_BINARY_MISSING: no binary for this platform is installed. The message
//   names the package for this platform, libc included.
// - ERR_WEATHER_CACHE_BINARY_LOAD: a binary is there but the system would not load it (another
//   libc or CPU, a missing symbol, a damaged file). The message names the file and quotes the
//   system's own dlopen message.
// The generated loader reports both as "Cannot find native binding" and blames npm, with the
// real error deep in its `cause` chain.
'use strict'

const { existsSync, readFileSync } = require('node:fs')
const { createRequire } = require('node:module')
const path = require('node:path')

const root = path.join(__dirname, '..')
const indexPath = path.join(root, 'index.js')

try {
  module.exports = require(indexPath)
} catch (error) {
  throw /Cannot find native binding/.test(messageOf(error)) ? explain(error) : error
}

function explain(error) {
  const { platform, arch } = process
  const abi = platform === 'linux' ? (isMusl() ? '-musl' : '-gnu') : platform === 'win32' ? '-msvc' : ''
  const target = `${platform}-${arch}${abi}`
  const name = `weather-cache-${target}`
  const { version, optionalDependencies = {} } = require('../package.json')

  // What index.js tried, in its order: the NAPI_RS_NATIVE_LIBRARY_PATH override alone when it is
  // set, else the file next to index.js (a build from source), then the platform package.
  const fromIndex = createRequire(indexPath)
  const override = process.env.NAPI_RS_NATIVE_LIBRARY_PATH
  const candidates = override
    ? [{ what: 'NAPI_RS_NATIVE_LIBRARY_PATH', file: resolveOrNull(fromIndex, override) }]
    : [
        { what: 'the local build', file: existingOrNull(path.join(root, `weather-cache.${target}.node`)) },
        { what: `the package "${name}"`, file: resolveOrNull(fromIndex, name) },
      ]
  const present = candidates.filter((c) => c.file)
  // Everything index.js caught that is not "not found": the loads that failed. Oldest first.
  const failures = causes(error).filter((m) => !/^Cannot find module\b/.test(m))

  if (present.length > 0 && failures.length > 0) {
    // Pair each failure with the file it names; dlopen does not always name it (a missing
    // library is named alone), so the rest go to the files present, in the order tried.
    const unpaired = [...failures]
    for (const c of present) {
      const i = unpaired.findIndex((m) => m.includes(c.file))
      if (i !== -1) c.failure = unpaired.splice(i, 1)[0]
    }
    for (const c of present) if (!c.failure && unpaired.length > 0) c.failure = unpaired.shift()
    const failed = present.filter((c) => c.failure)
    const first = failed[0] || present[0]
    const lines = failed.map((c) => `  ${c.file} (${c.what}): ${c.failure}`)
    const loadError = new Error(
      `weather-cache: a native binary is installed but this ${target} system could not load it:\n` +
        `${lines.join('\n')}\n` +
        `The file may be built for another libc or CPU, need a newer system library, or be ` +
        `damaged. Reinstall it (\`npm install ${name}@${version}\`) or build from source: see ` +
        `"Install" in the README.`,
    )
    loadError.code = 'ERR_WEATHER_CACHE_BINARY_LOAD'
    loadError.file = first.file
    loadError.dlopenMessage = first.failure
    loadError.cause = error
    return loadError
  }

  let message
  if (override) {
    message =
      `weather-cache: NAPI_RS_NATIVE_LIBRARY_PATH is set to "${override}", which does not ` +
      `resolve to a file. Unset it to load the binary for ${target} from "${name}".`
  } else if (name in optionalDependencies) {
    const packageDir = packageDirOrNull(fromIndex, name)
    message = packageDir
      ? `weather-cache: the native binary for ${target} is missing. The optional dependency ` +
        `"${name}" is installed at ${packageDir} but holds no binary. Reinstall it with ` +
        `\`npm install ${name}@${version}\`.`
      : `weather-cache: the native binary for ${target} is missing. It ships in the optional ` +
        `dependency "${name}", which was not installed (--omit=optional, --no-optional, or a ` +
        `lockfile made on another platform skip it). Install it with \`npm install ${name}@${version}\`.`
  } else {
    message =
      `weather-cache: there is no prebuilt binary for ${target} (prebuilt: ` +
      `${Object.keys(optionalDependencies).join(', ')}). Build it from source: see "Install" in the README.`
  }
  const missing = new Error(message)
  missing.code = 'ERR_WEATHER_CACHE_BINARY_MISSING'
  missing.package = name
  missing.cause = error
  return missing
}

function messageOf(error) {
  try {
    return String(error && error.message)
  } catch {
    return ''
  }
}

/** The messages of an error's `cause` chain, oldest first (index.js links newest to oldest). */
function causes(error) {
  const messages = []
  const seen = new Set()
  for (let e = error && error.cause; e && !seen.has(e) && messages.length < 64; e = e.cause) {
    seen.add(e)
    messages.push(messageOf(e))
  }
  return messages.reverse()
}

function resolveOrNull(req, specifier) {
  try {
    return req.resolve(specifier)
  } catch {
    return null
  }
}

function existingOrNull(file) {
  return existsSync(file) ? file : null
}

function packageDirOrNull(req, name) {
  const manifest = resolveOrNull(req, `${name}/package.json`)
  return manifest && path.dirname(manifest)
}

// glibc or musl, decided the way napi-rs's generated index.js decides it: /usr/bin/ldd's text,
// then the process report (glibcVersionRuntime, or a musl loader among the shared objects), then
// `ldd --version`.
function isMusl() {
  if (process.platform !== 'linux') return false
  try {
    return readFileSync('/usr/bin/ldd', 'utf-8').includes('musl')
  } catch {}
  try {
    if (process.report && typeof process.report.getReport === 'function') {
      process.report.excludeNetwork = true
      const report = process.report.getReport()
      const header = report && report.header
      if (header && header.glibcVersionRuntime) return false
      const objects = report && report.sharedObjects
      if (Array.isArray(objects) && objects.some((f) => f.includes('libc.musl-') || f.includes('ld-musl-'))) return true
      if (report) return false
    }
  } catch {}
  try {
    return require('node:child_process').execSync('ldd --version', { encoding: 'utf8' }).includes('musl')
  } catch {
    return false
  }
}
