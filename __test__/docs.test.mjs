// The docs check (scripts/check-docs.mjs, run by npm test) passes on the repository and fails,
// naming each problem, on a copy where a link, an anchor, a flag row and an option row are wrong.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

const repo = join(dirname(fileURLToPath(import.meta.url)), '..')
const check = (env = {}) => spawnSync(process.execPath, [join(repo, 'scripts/check-docs.mjs')], { encoding: 'utf8', env: { ...process.env, ...env } })

test('the docs check passes on the repository: README at most ~250 lines', () => {
  const run = check()
  assert.equal(run.status, 0, run.stderr)
  assert.match(run.stdout, /serve flags and the options of WeatherServiceOptions are documented/)
  assert.ok(readFileSync(join(repo, 'README.md'), 'utf8').split('\n').length <= 260)
})

test('the docs check fails on a broken link, a missing anchor, an undocumented flag and a documented option that does not exist', (t) => {
  const copy = mkdtempSync(join(tmpdir(), 'docs-check-'))
  t.after(() => rmSync(copy, { recursive: true, force: true }))
  cpSync(join(repo, 'docs'), join(copy, 'docs'), { recursive: true })
  cpSync(join(repo, 'index.d.ts'), join(copy, 'index.d.ts'))
  const readme = readFileSync(join(repo, 'README.md'), 'utf8')
  writeFileSync(join(copy, 'README.md'), `${readme}\n[gone](docs/nowhere.md) [no such heading](docs/api.md#no-such-heading)\n`)
  const proxy = readFileSync(join(copy, 'docs/proxy.md'), 'utf8')
  writeFileSync(join(copy, 'docs/proxy.md'), proxy.replace(/^\| `--port <n>` .*\n/m, ''))
  const api = readFileSync(join(copy, 'docs/api.md'), 'utf8')
  writeFileSync(join(copy, 'docs/api.md'), api.replace(/^(\| `preset` .*\n)/m, '$1| `noSuchOption` | none | made up |\n'))

  const run = check({ CHECK_DOCS_ROOT: copy })
  assert.equal(run.status, 1)
  assert.match(run.stderr, /README\.md: link to docs\/nowhere\.md: no such file/)
  assert.match(run.stderr, /README\.md: link to docs\/api\.md#no-such-heading: docs\/api\.md has no heading #no-such-heading/)
  assert.match(run.stderr, /docs\/proxy\.md: serve flag --port \(in --help\) has no row/)
  assert.match(run.stderr, /docs\/api\.md: documents option noSuchOption, which WeatherServiceOptions does not have/)
})
