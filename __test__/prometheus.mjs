// A strict check of the Prometheus text exposition format (every line), cross-checked with an
// independent parser. Returns the sample values by metric name (summed over a family's series)
// and by series (`name{provider="x"}`).
import assert from 'node:assert/strict'

import parsePrometheusText from 'parse-prometheus-text-format'

export function parsePrometheus(text) {
  assert.ok(text.endsWith('\n'))
  const types = new Map()
  const values = new Map()
  for (const line of text.trimEnd().split('\n')) {
    let m
    if ((m = /^# HELP (weather_cache_[a-z_]+) (.+)$/.exec(line))) continue
    if ((m = /^# TYPE (weather_cache_[a-z_]+) (counter|gauge)$/.exec(line))) {
      assert.ok(!types.has(m[1]), `duplicate TYPE ${m[1]}`)
      types.set(m[1], m[2])
      continue
    }
    m = /^(weather_cache_[a-z_]+)(\{[a-z_]+="(?:[^"\\\n]|\\["\\n])*"(?:,[a-z_]+="(?:[^"\\\n]|\\["\\n])*")*\})? (-?\d+(?:\.\d+)?(?:e[+-]?\d+)?)$/.exec(line)
    assert.ok(m, `not a valid sample line: ${JSON.stringify(line)}`)
    assert.ok(types.has(m[1]), `sample before its TYPE: ${m[1]}`)
    if (m[2]) {
      assert.ok(!values.has(m[1] + m[2]), `duplicate series ${m[1]}${m[2]}`)
      values.set(m[1] + m[2], Number(m[3]))
    }
    values.set(m[1], (values.get(m[1]) ?? 0) + Number(m[3]))
  }
  for (const [name, type] of types) {
    assert.equal(type === 'counter', name.endsWith('_total'), `${name} is a ${type}`)
  }
  const families = parsePrometheusText(text)
  assert.equal(families.length, types.size)
  for (const family of families) {
    assert.equal(family.type, types.get(family.name).toUpperCase())
    const total = family.metrics.reduce((sum, metric) => sum + Number(metric.value), 0)
    assert.ok(Math.abs(total - values.get(family.name)) < 1e-6, family.name)
  }
  return values
}
