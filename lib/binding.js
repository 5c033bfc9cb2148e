// Loads the native addon through the loader napi-rs generates (index.js), with a clear error
// when the prebuilt binary for this platform is missing (the generated one names the package
// only deep in its `cause` chain).
'use strict'

try {
  module.exports = require('../index.js')
} catch (error) {
  throw /Cannot find native binding/.test(String(error && error.message)) ? missingBinary(error) : error
}

function missingBinary(cause) {
  const { platform, arch } = process
  const abi = platform === 'linux' ? (isMusl() ? '-musl' : '-gnu') : platform === 'win32' ? '-msvc' : ''
  const name = `weather-cache-${platform}-${arch}${abi}`
  const { version, optionalDependencies = {} } = require('../package.json')
  const message =
    name in optionalDependencies
      ? `weather-cache: the native binary for ${platform}-${arch}${abi} is missing. It ships in the ` +
        `optional dependency "${name}", which was not installed (--omit=optional, --no-optional, or a ` +
        `lockfile made on another platform skip it). Install it with \`npm install ${name}@${version}\`.`
      : `weather-cache: there is no prebuilt binary for ${platform}-${arch}${abi} (prebuilt: ` +
        `${Object.keys(optionalDependencies).join(', ')}). Build it from source: see "Install" in the README.`
  const error = new Error(message)
  error.code = 'ERR_WEATHER_CACHE_BINARY_MISSING'
  error.cause = cause
  return error
}

function isMusl() {
  try {
    return !process.report.getReport().header.glibcVersionRuntime
  } catch {
    return false
  }
}
