#!/usr/bin/env node
// No file imports a file that imports it back (the developers' guide, issue 22). Reads every
// Rust file of each crate, resolves the paths it names through `crate::`, `super::` and
// `self::` (in `use` declarations, groups included, and inline in code) to the files that
// define those modules, and fails when two files name each other.
//
// A module's root file (`mod.rs`, `lib.rs`) declaring and re-exporting its children while a
// child uses its parent's items is how Rust modules are built, not a cycle: that pair is left
// out. Two siblings, or files in different modules, that need each other are reported: make
// them one concept, or let them meet through a type in a lower file.
//
// Usage: node scripts/check-imports.mjs [--graph]   (--graph prints every file's imports)
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
/** Each crate's source root (where `lib.rs` or `main.rs` is). */
const CRATES = ['crates/core/src', 'crates/server/src', 'src'].map((dir) => join(root, dir)).filter((dir) => existsSync(dir))

function rustFiles(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) return rustFiles(path)
    return name.endsWith('.rs') ? [path] : []
  })
}

/** The module path of a file (`src/engine/flight.rs` -> ['engine', 'flight']). */
function modulePath(crateRoot, file) {
  const parts = relative(crateRoot, file).replace(/\.rs$/, '').split('/')
  const last = parts.at(-1)
  if (last === 'mod' || (parts.length === 1 && (last === 'lib' || last === 'main'))) parts.pop()
  // A binary's modules (src/bin/x.rs) are their own crate: kept apart by a prefix.
  return parts
}

/** The file that defines the module at `path` (the deepest existing prefix), in `crateRoot`. */
function fileOf(crateRoot, files, path) {
  for (let n = path.length; n >= 0; n--) {
    const prefix = path.slice(0, n)
    const candidates = n === 0 ? ['lib.rs', 'main.rs'] : [`${prefix.join('/')}.rs`, `${prefix.join('/')}/mod.rs`]
    for (const candidate of candidates) {
      const file = join(crateRoot, candidate)
      if (files.has(file)) return file
    }
  }
  return null
}

/** Code without comments, strings and character literals (their text could look like paths). */
function strip(source) {
  return source
    .replace(/\/\*[\s\S]*?\*\//g, ' ')
    .replace(/r#*"[\s\S]*?"#*/g, '""')
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/'(?:[^'\\\n]|\\.)'/g, "' '")
    .replace(/\/\/[^\n]*/g, '')
}

/** Expands `a::{b, c::{d, e}}` into ['a::b', 'a::c::d', 'a::c::e']. */
function expand(tree) {
  const text = tree.replace(/\s+/g, '')
  const open = text.indexOf('{')
  if (open < 0) return [text]
  const prefix = text.slice(0, open)
  const inner = text.slice(open + 1, text.lastIndexOf('}'))
  const items = []
  let depth = 0
  let start = 0
  for (let i = 0; i < inner.length; i++) {
    if (inner[i] === '{') depth++
    else if (inner[i] === '}') depth--
    else if (inner[i] === ',' && depth === 0) {
      items.push(inner.slice(start, i))
      start = i + 1
    }
  }
  items.push(inner.slice(start))
  return items.filter(Boolean).flatMap((item) => expand(item).map((path) => prefix + path))
}

/** Every module path `file` names, resolved against the module it sits in (inline `mod x {` blocks included). */
function namedPaths(source, filePath) {
  const code = strip(source)
  const names = []
  // Inline module blocks: where each starts and ends, to resolve `super` inside them.
  const blocks = []
  const blockStart = /\bmod\s+([A-Za-z_][A-Za-z0-9_]*)\s*\{/g
  for (let m; (m = blockStart.exec(code)); ) {
    let depth = 0
    let end = code.length
    for (let i = m.index + m[0].length - 1; i < code.length; i++) {
      if (code[i] === '{') depth++
      else if (code[i] === '}' && --depth === 0) {
        end = i
        break
      }
    }
    blocks.push({ start: m.index, end })
  }
  const depthAt = (index) => blocks.filter((b) => b.start < index && index < b.end).length
  const resolve = (path, index) => {
    const segments = path.split('::').filter((s) => s !== '' && s !== '*')
    let base
    if (segments[0] === 'crate') base = []
    else if (segments[0] === 'self' || segments[0] === 'super') base = [...filePath, ...Array(depthAt(index)).fill('#inline')]
    else return null
    let rest = segments.slice(1)
    if (segments[0] === 'super') {
      base = base.slice(0, -1)
      while (rest[0] === 'super') {
        base = base.slice(0, -1)
        rest = rest.slice(1)
      }
    }
    return [...base.filter((s) => s !== '#inline'), ...rest.filter((s) => s !== 'self')]
  }
  const uses = /\buse\s+((?:crate|super|self)\b[^;]*);/g
  for (let m; (m = uses.exec(code)); ) {
    for (const path of expand(m[1])) names.push(resolve(path.replace(/\bas\s*\w+$/, ''), m.index))
  }
  // Paths written in code (`super::providers::parse(..)`), the `use` declarations blanked out.
  const rest = code.replace(uses, (text) => ' '.repeat(text.length))
  const inline = /(?<![:\w])(crate|super|self)((?:::(?:super|[A-Za-z_][A-Za-z0-9_]*))+)/g
  for (let m; (m = inline.exec(rest)); ) names.push(resolve(m[1] + m[2], m.index))
  return names.filter(Boolean)
}

let failures = 0
const printGraph = process.argv.includes('--graph')
for (const crateRoot of CRATES) {
  const files = new Set(rustFiles(crateRoot))
  const edges = new Map()
  for (const file of files) {
    const path = modulePath(crateRoot, file)
    const targets = new Set()
    for (const named of namedPaths(readFileSync(file, 'utf8'), path)) {
      const target = fileOf(crateRoot, files, named)
      if (target && target !== file) targets.add(target)
    }
    edges.set(file, targets)
  }
  const show = (file) => relative(root, file)
  const isRootOf = (parent, child) => /\/(mod|lib|main)\.rs$/.test(parent) && dirname(child).startsWith(dirname(parent)) && parent !== child
  for (const [file, targets] of edges) {
    if (printGraph) console.log(`${show(file)} -> ${[...targets].map(show).join(', ')}`)
    for (const target of targets) {
      if (file >= target || !edges.get(target)?.has(file)) continue
      if (isRootOf(file, target) || isRootOf(target, file)) continue
      console.error(`${show(file)} and ${show(target)} import each other`)
      failures++
    }
  }
}
if (failures > 0) {
  console.error(`check-imports: ${failures} pair(s) of files import each other: make them one concept, or let them meet through a type in a lower file`)
  process.exit(1)
}
console.log(`check-imports: no two files import each other (${CRATES.map((c) => relative(root, c)).join(', ')})`)
