// The benchmark's targets: declared per scenario, judged or reported, and `--check`'s verdict.
//
// Kinds:
// - exact: counts of upstream calls that come out the same on every machine and in every run.
//   Judged in every run, a --quick one included.
// - noisy: timings and their ratios, memory, and counts that depend on timing. Judged in full
//   runs only; a --quick run (shorter, smaller) reports them.
// Whatever the kind and the run, a declared target that could not be measured is never dropped:
// it is recorded with the reason, and fails --check.

export class Targets {
  /** Every declared target: `{ target, kind, limit, measured, value?, pass?, why? }`. */
  list = []
  /** Scenarios that threw. */
  failed = []

  /** `log(line)` says what went wrong as it happens (a scenario that threw or could not run). */
  constructor({ log = console.log } = {}) {
    this.log = log
  }

  /**
   * Runs one scenario. `declared` lists its targets as `[name, kind, limit]`; `body(judge)`
   * measures, prints, and calls `judge(name, value, pass)` for each, or `judge.cannot(name, why)`.
   * `body` returns nothing, or a sentence saying why it could not run at all. A declared target
   * it did not judge, or each of them when it throws, is recorded as unmeasured, with the reason.
   */
  async scenario(name, declared, body) {
    for (const [, kind] of declared) if (kind !== 'exact' && kind !== 'noisy') throw new Error(`bench: unknown kind ${kind}`)
    const judged = new Map()
    const reasons = new Map()
    const known = (target) => {
      if (!declared.some(([d]) => d === target)) throw new Error(`bench: "${target}" is not a declared target of ${name}`)
      return target
    }
    const judge = (target, value, pass) => {
      judged.set(known(target), { value, pass: Boolean(pass) })
    }
    judge.cannot = (target, why) => {
      reasons.set(known(target), why)
    }
    let why
    try {
      const returned = await body(judge)
      if (typeof returned === 'string') why = returned
    } catch (error) {
      this.failed.push(name)
      this.log(`\n${name}: FAILED\n${error.stack}`)
      why = `the scenario failed: ${error.message}`
    }
    if (why) this.log(`\n${name}: NOT MEASURED (${why})`)
    for (const [target, kind, limit] of declared) {
      const j = judged.get(target)
      if (j && Number.isFinite(j.value)) this.list.push({ target, kind, limit, measured: true, value: j.value, pass: j.pass })
      else this.list.push({ target, kind, limit, measured: false, why: reasons.get(target) ?? why ?? (j ? `its value is ${j.value}` : 'the scenario gave no value for it') })
    }
  }

  /**
   * Marks each target `judged` (exact ones always, noisy ones in full runs) with its `verdict`,
   * and says what `--check` concludes: `{ exitCode, lines }`.
   */
  verdict({ quick }) {
    for (const t of this.list) {
      t.judged = t.kind === 'exact' || !quick
      t.verdict = !t.measured ? 'UNMEASURED' : t.pass ? 'met' : 'MISSED'
    }
    const met = this.list.filter((t) => t.measured && t.judged && t.pass)
    const missed = this.list.filter((t) => t.measured && t.judged && !t.pass)
    const unmeasured = this.list.filter((t) => !t.measured)
    const reported = this.list.filter((t) => t.measured && !t.judged)
    const lines = [
      `check: ${met.length} met, ${missed.length} missed, ${unmeasured.length} unmeasured` +
        (reported.length > 0 ? `; ${reported.length} noisy target(s) reported, not judged (quick run)` : ''),
      ...missed.map((t) => `check: MISSED ${t.target}: ${Number(t.value.toFixed(3))}, target ${t.limit}`),
      ...unmeasured.map((t) => `check: UNMEASURED ${t.target}: ${t.why}`),
      ...this.failed.map((name) => `check: FAILED scenario ${name}`),
    ]
    const exitCode = missed.length > 0 || unmeasured.length > 0 || this.failed.length > 0 ? 1 : 0
    return { exitCode, lines }
  }
}
