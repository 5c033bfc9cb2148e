#!/usr/bin/env node
// The docs check (issue 22): what a newcomer follows must lead somewhere.
// - Every relative link in README.md, docs/ and the crates' READMEs names a file that exists,
//   and every `#anchor` a heading of that file (GitHub's slugs).
// - Every flag `serve --help` prints has a row in the table of docs/proxy.md's "## Flags", and
//   every flag of that table is in `--help` (the help comes from the one parser, in Rust).
// - Every field of `WeatherServiceOptions` in index.d.ts has a row in the table of docs/api.md's
//   "## Options", and every row names a field.
// Fails with one line per problem. Usage: node scripts/check-docs.mjs (run by npm test)
import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const repo = join(dirname(fileURLToPath(import.meta.url)), '..')
// The documents checked (and index.d.ts); CHECK_DOCS_ROOT lets the test check a broken copy.
// `serve --help` always comes from this repository's CLI.
const root = process.env.CHECK_DOCS_ROOT ?? repo
const PROXY_DOC = 'docs/proxy.md'
const API_DOC = 'docs/api.md'

function markdownFiles() {
  const walk = (dir) =>
    readdirSync(join(root, dir)).flatMap((name) => {
      const path = join(dir, name)
      if (statSync(join(root, path)).isDirectory()) return walk(path)
      return name.endsWith('.md') ? [path] : []
    })
  const crateReadmes = ['crates/core/README.md', 'crates/server/README.md'].filter((f) => existsSync(join(root, f)))
  return ['README.md', ...(existsSync(join(root, 'docs')) ? walk('docs') : []), ...crateReadmes]
}

/** The text outside fenced code blocks and inline code (links there are examples, not links). */
function prose(text) {
  return text.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '').replace(/`[^`\n]*`/g, '')
}

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
export function anchors(text) {
  const seen = new Map()
  const out = new Set()
  const body = text.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '')
  for (const [, heading] of body.matchAll(/^#{1,6}[ \t]+(.+?)[ \t#]*$/gm)) {
    const slug = heading
      .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1') // a link in a heading keeps its text
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-')
    const n = seen.get(slug) ?? 0
    seen.set(slug, n + 1)
    out.add(n === 0 ? slug : `${slug}-${n}`)
  }
  return out
}

const problems = []

// 1. Links and anchors.
for (const file of markdownFiles()) {
  const text = readFileSync(join(root, file), 'utf8')
  for (const [, target] of prose(text).matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue // http:, https:, mailto:
    const [path, anchor] = target.split('#')
    const targetFile = path === '' ? file : relative(root, resolve(join(root, dirname(file)), path))
    if (!existsSync(join(root, targetFile))) {
      problems.push(`${file}: link to ${target}: no such file (${targetFile})`)
      continue
    }
    if (anchor !== undefined && targetFile.endsWith('.md')) {
      const known = anchors(readFileSync(join(root, targetFile), 'utf8'))
      if (!known.has(decodeURIComponent(anchor))) problems.push(`${file}: link to ${target}: ${targetFile} has no heading #${anchor}`)
    }
  }
}

/** The first cells of the table rows that start with inline code, in a document's `## section`. */
function tableNames(file, section, pattern) {
  if (!existsSync(join(root, file))) {
    problems.push(`${file}: missing`)
    return new Set()
  }
  const whole = readFileSync(join(root, file), 'utf8')
  const start = whole.search(new RegExp(`^## ${section}\\s*$`, 'm'))
  if (start < 0) {
    problems.push(`${file}: no section "## ${section}"`)
    return new Set()
  }
  const rest = whole.slice(start + 3)
  const end = rest.search(/^## /m)
  const text = end < 0 ? rest : rest.slice(0, end)
  return new Set([...text.matchAll(/^\|\s*`([^`]+)`/gm)].map((m) => m[1].split(/[ =]/)[0]).filter((name) => pattern.test(name)))
}

// 2. serve's flags: --help against the proxy doc's tables.
const help = execFileSync(process.execPath, [join(repo, 'bin/weather-cache.mjs'), 'serve', '--help'], { encoding: 'utf8' })
const helpFlags = new Set([...help.matchAll(/(?<![\w-])--[a-z][a-z0-9-]*/g)].map((m) => m[0]))
const documentedFlags = tableNames(PROXY_DOC, 'Flags', /^--[a-z]/)
for (const flag of helpFlags) if (!documentedFlags.has(flag)) problems.push(`${PROXY_DOC}: serve flag ${flag} (in --help) has no row`)
for (const flag of documentedFlags) if (!helpFlags.has(flag)) problems.push(`${PROXY_DOC}: documents ${flag}, which serve --help does not list`)

// 3. WeatherServiceOptions: index.d.ts against the API doc's options table.
const dts = readFileSync(join(root, 'index.d.ts'), 'utf8')
const block = dts.match(/export interface WeatherServiceOptions \{([\s\S]*?)\n\}/)
if (!block) problems.push('index.d.ts: no WeatherServiceOptions interface')
else {
  const fields = new Set([...block[1].matchAll(/^ {2}(?:readonly )?(\w+)\??:/gm)].map((m) => m[1]))
  const documented = tableNames(API_DOC, 'Options', /^[a-z]\w*$/)
  for (const field of fields) if (!documented.has(field)) problems.push(`${API_DOC}: option ${field} (in index.d.ts) has no row`)
  for (const name of documented) if (!fields.has(name)) problems.push(`${API_DOC}: documents option ${name}, which WeatherServiceOptions does not have`)
}

if (problems.length > 0) {
  for (const problem of problems) console.error(`check-docs: ${problem}`)
  process.exit(1)
}
console.log(`check-docs: links and anchors resolve in ${markdownFiles().length} files; ${helpFlags.size} serve flags and the options of WeatherServiceOptions are documented`)
