// Flag parsing for `demo` (`serve` is parsed in Rust: weather-cache-server's cli): `--name value` or `--name=value`, typed, with
// usage errors that name the flag.

export class UsageError extends Error {}

/**
 * Parses `argv` against `spec` ({ name: { type: 'string' | 'int' | 'number' | 'boolean', min?, max?,
 * choices?, list? } }). A `list` flag may be given several times, each value comma-separated: its
 * value is the array of them all. Returns `{ values, help }`; unknown flags and bad values throw
 * UsageError.
 */
export function parseFlags(argv, spec) {
  const values = {}
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg === '--help' || arg === '-h') return { values, help: true }
    const match = /^--([a-z][a-z0-9-]*)(?:=(.*))?$/.exec(arg)
    if (!match || !(match[1] in spec)) throw new UsageError(`unknown option: ${arg}`)
    const [, name, inline] = match
    const rule = spec[name]
    if (rule.type === 'boolean') {
      if (inline !== undefined) throw new UsageError(`--${name} takes no value`)
      values[name] = true
      continue
    }
    const raw = inline ?? argv[++i]
    if (raw === undefined) throw new UsageError(`--${name} needs a value`)
    if (rule.list) {
      const items = raw.split(',').map((item) => item.trim())
      if (items.some((item) => item === '')) throw new UsageError(`--${name} has an empty item (got "${raw}")`)
      values[name] = [...(values[name] ?? []), ...items.map((item) => convert(name, item, rule))]
      continue
    }
    values[name] = convert(name, raw, rule)
  }
  return { values, help: false }
}

function convert(name, raw, rule) {
  if (rule.type === 'string') {
    if (rule.choices && !rule.choices.includes(raw)) throw new UsageError(`--${name} must be one of ${rule.choices.join(', ')} (got "${raw}")`)
    return raw
  }
  const value = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(raw.trim()) ? Number(raw) : NaN
  if (!Number.isFinite(value)) throw new UsageError(`--${name} must be a number (got "${raw}")`)
  if (rule.type === 'int' && !Number.isInteger(value)) throw new UsageError(`--${name} must be an integer (got "${raw}")`)
  if (rule.min !== undefined && value < rule.min) throw new UsageError(`--${name} must be >= ${rule.min} (got ${raw})`)
  if (rule.max !== undefined && value > rule.max) throw new UsageError(`--${name} must be <= ${rule.max} (got ${raw})`)
  return value
}
