// The examples an operator copies: compose.yaml (Redis and two proxies on the image) and the
// systemd unit (contrib/systemd). Neither can run here in full (no registry for Redis's image,
// no systemd as PID 1), so they are checked by the tools that read them: a YAML parser and the
// Compose shape the README promises; `systemd-analyze verify` (every key known, ExecStart
// executable) and `systemd-analyze security` (the sandbox's exposure score). The flags both
// pass must be flags `weather-cache serve --help` lists.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

import { needs } from './needs.mjs'
import { runServe } from './serve-process.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))
// Debian's python3-yaml, with Debian's python (a pyenv or venv python may lack it).
const PYTHON = '/usr/bin/python3'
const hasYaml = spawnSync(PYTHON, ['-c', 'import yaml'], { encoding: 'utf8' }).status === 0
const hasSystemdAnalyze = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' }).status === 0

/** The flags `weather-cache serve --help` documents. */
async function serveFlags() {
  const { code, stdout } = await runServe(['--help'])
  assert.equal(code, 0)
  return new Set([...stdout.matchAll(/^\s+(?:-\w, )?(--[a-z-]+)/gm)].map((m) => m[1]))
}

const flagsOf = (argv) => argv.filter((a) => a.startsWith('--')).map((a) => a.split('=')[0])

test('compose.yaml: Redis and two proxies from the image, sharing the tier, secrets from files', async (t) => {
  if (!needs(t, hasYaml, `${PYTHON} cannot import yaml (apt-get install python3-yaml)`)) return
  const parsed = spawnSync(PYTHON, ['-c', 'import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))'], {
    input: readFileSync(join(root, 'compose.yaml')),
    encoding: 'utf8',
  })
  assert.equal(parsed.status, 0, parsed.stderr)
  const compose = JSON.parse(parsed.stdout)
  assert.deepEqual(Object.keys(compose.services).sort(), ['proxy-a', 'proxy-b', 'redis'])
  assert.match(compose.services.redis.image, /redis/)
  assert.ok(compose.services.redis.command.includes('volatile-lru'), 'Redis evicts only what carries a TTL')
  const known = await serveFlags()
  const ports = []
  for (const name of ['proxy-a', 'proxy-b']) {
    const proxy = compose.services[name]
    assert.match(proxy.image, /^localhost\/weather-cache-server:/)
    assert.ok(proxy.command.includes('--redis=redis://redis:6379'), `${name} uses the shared tier`)
    assert.ok(proxy.command.includes('--api-key-file=/run/secrets/openweather-api-key'))
    assert.ok(proxy.command.includes('--token-file=/run/secrets/weather-cache-token'))
    for (const flag of flagsOf(proxy.command)) assert.ok(known.has(flag), `${name}: ${flag} is not a serve flag`)
    assert.deepEqual(proxy.secrets.sort(), ['openweather-api-key', 'weather-cache-token'])
    assert.equal(proxy.depends_on.redis.condition, 'service_healthy')
    assert.equal(proxy.read_only, true)
    assert.deepEqual(proxy.cap_drop, ['ALL'])
    ports.push(...proxy.ports)
  }
  assert.equal(new Set(ports).size, 2, `two host ports: ${ports.join(', ')}`)
  assert.ok(ports.every((p) => p.startsWith('127.0.0.1:')), 'published on loopback only')
  for (const secret of Object.values(compose.secrets)) assert.match(secret.file, /^\.\/secrets\//)
})

test('the systemd unit: verified by systemd-analyze, sandboxed, the key and token from credentials', async (t) => {
  if (!needs(t, hasSystemdAnalyze, 'systemd-analyze is not installed (apt-get install systemd)')) return
  const unit = readFileSync(join(root, 'contrib', 'systemd', 'weather-cache-server.service'), 'utf8')
  for (const line of ['DynamicUser=yes', 'NoNewPrivileges=yes', 'ProtectSystem=strict', 'ProtectHome=yes', 'PrivateTmp=yes', 'CapabilityBoundingSet=']) {
    assert.ok(unit.split('\n').includes(line), `${line} is set`)
  }
  assert.match(unit, /^LoadCredential=openweather-api-key:/m)
  assert.match(unit, /^LoadCredential=token:/m)
  const execStart = /^ExecStart=((?:.*\\\n)*.*)$/m.exec(unit)[1].replace(/\\\n/g, ' ').trim().split(/\s+/)
  assert.equal(execStart[0], '/usr/local/bin/weather-cache-server')
  assert.ok(execStart.join(' ').includes('--api-key-file %d/openweather-api-key'))
  assert.ok(execStart.join(' ').includes('--token-file %d/token'))
  const known = await serveFlags()
  for (const flag of flagsOf(execStart)) assert.ok(known.has(flag), `${flag} is not a serve flag`)

  // verify wants ExecStart to be an executable: the same unit, pointing at one that exists.
  const dir = mkdtempSync(join(tmpdir(), 'weather-cache-unit-'))
  try {
    const copy = join(dir, 'weather-cache-server.service')
    writeFileSync(copy, unit.replace('ExecStart=/usr/local/bin/weather-cache-server', `ExecStart=${process.execPath}`))
    const verify = spawnSync('systemd-analyze', ['verify', copy], { encoding: 'utf8' })
    // verify exits 0 on an unknown key, and says so on stderr: both must be clean.
    assert.equal(verify.status, 0, verify.stderr)
    assert.equal(verify.stderr.split('\n').filter((l) => l.includes('weather-cache-server.service')).join('\n'), '')
    const security = spawnSync('systemd-analyze', ['security', '--offline=yes', copy], { encoding: 'utf8' })
    const exposure = Number((/Overall exposure level for \S+: ([0-9.]+)/.exec(security.stdout) || [])[1])
    assert.ok(exposure <= 2, `exposure ${exposure} (0 best, 10 worst):\n${security.stdout}`)
    t.diagnostic(`systemd-analyze security: exposure ${exposure}`)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
