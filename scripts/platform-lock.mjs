// Keeps package-lock.json's entries for the platform packages (npm/*) in step with them.
//
// The root package lists every platform package as an optional dependency, as published
// napi-rs packages do. Until a version is published, npm cannot resolve them, leaves them out of
// the lockfile, and `npm ci` then refuses the lockfile as out of sync. An entry carrying the
// package's os/cpu/libc fixes that: npm skips it on other platforms, and on a matching one the
// failed fetch of an optional package is not an error (the local build is used instead).
// Run after `napi version` or when targets change; `--check` only reports drift.
import { readFileSync, readdirSync, writeFileSync } from 'node:fs'

const root = new URL('..', import.meta.url)
const read = (path) => JSON.parse(readFileSync(new URL(path, root), 'utf8'))
const pkg = read('package.json')
const lock = read('package-lock.json')
const check = process.argv.includes('--check')

const wanted = {}
for (const dir of readdirSync(new URL('npm/', root))) {
  const platform = read(`npm/${dir}/package.json`)
  // Key order as npm writes it (version, then alphabetical), so npm install keeps it as is.
  const entry = { version: platform.version }
  if (platform.cpu) entry.cpu = platform.cpu
  if (platform.libc) entry.libc = platform.libc
  entry.optional = true
  if (platform.os) entry.os = platform.os
  wanted[platform.name] = entry
}

const problems = []
for (const [name, entry] of Object.entries(wanted)) {
  if (pkg.optionalDependencies?.[name] !== pkg.version) problems.push(`package.json optionalDependencies.${name} should be ${pkg.version}`)
  if (entry.version !== pkg.version) problems.push(`npm/ ${name} is at ${entry.version}, the package at ${pkg.version}`)
  const current = lock.packages[`node_modules/${name}`]
  if (canonical(current) !== canonical(entry)) {
    problems.push(`package-lock.json entry for ${name} ${current ? 'differs' : 'is missing'}`)
    lock.packages[`node_modules/${name}`] = entry
  }
}
lock.packages[''].optionalDependencies = Object.fromEntries(Object.entries(pkg.optionalDependencies ?? {}).sort(([a], [b]) => a.localeCompare(b)))

if (check) {
  if (problems.length) {
    console.error(`platform packages out of step:\n  ${problems.join('\n  ')}\nrun: node scripts/platform-lock.mjs`)
    process.exit(1)
  }
} else {
  writeFileSync(new URL('package-lock.json', root), `${JSON.stringify(lock, null, 2)}\n`)
  console.log(problems.length ? `updated:\n  ${problems.join('\n  ')}` : 'package-lock.json already in step')
}

function canonical(value) {
  return JSON.stringify(value, (key, v) => (v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort()) : v))
}
