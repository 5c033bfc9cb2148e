// What a test needs from outside the repository (a server, a compiler): in CI it must be there,
// elsewhere its absence is reported as a skip, never as a pass. No import of the addon here, so
// that the loader's tests can use it too.

/** Whether this is CI (`CI` set, and not to "0" or "false"): .ci/run sets CI=1, GitHub Actions CI=true. */
export const inCI = Boolean(process.env.CI) && !/^(0|false)$/i.test(process.env.CI)

/**
 * Inside a test: returns true when `present`; otherwise fails the test under CI, or marks it
 * skipped with `missing` as the reason (`t.skip`) and returns false, for the test to return.
 */
export function needs(t, present, missing) {
  if (present) return true
  if (inCI) throw new Error(`CI is set but ${missing}: .ci/run must install it`)
  t.skip(missing)
  return false
}
