// A custom provider's `fetch(lat, lon, signal)` as the addon calls it (src/binding/fetcher.rs).
// The wrapper gives the function its AbortSignal (aborted after `requestTimeoutMs`, and by the
// service's `close()`), and turns whatever it does into a plain outcome: it never throws and
// never rejects, since an exception inside a threadsafe call would end the process.
'use strict'

const MAX_TIMER_MS = 2 ** 31 - 1

/** Longest error text passed on; the user's messages are theirs, and may be long. */
const MAX_MESSAGE = 200

function reason(what, error) {
  const name = typeof error?.name === 'string' ? error.name : typeof error
  const message = typeof error?.message === 'string' ? `: ${error.message}` : ''
  return `fetch ${what} (${name}${message})`.slice(0, MAX_MESSAGE)
}

function outcomeOf(value) {
  if (value === null || typeof value !== 'object') return { error: 'fetch resolved to something other than { celsius, condition }' }
  const { celsius, condition } = value
  if (typeof celsius !== 'number') return { error: 'fetch resolved without a numeric celsius' }
  if (typeof condition !== 'string') return { error: 'fetch resolved without a condition string' }
  return { celsius, condition }
}

/**
 * Wraps `fetch` for the addon. `pending` holds the AbortControllers of calls in flight, so that
 * `close()` can abort them.
 */
function wrapFetcher(fetch, pending) {
  return (lat, lon, timeoutMs) =>
    new Promise((resolve) => {
      const controller = new AbortController()
      pending.add(controller)
      let settled = false
      const finish = (outcome) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        pending.delete(controller)
        resolve(outcome)
      }
      // At the timeout the call ends, whether or not the function listens to its signal.
      // setTimeout fires at once past 2^31 - 1 ms; beyond that the addon's own timeout ends the call.
      const timer = setTimeout(() => {
        controller.abort(new DOMException('The fetch timed out', 'TimeoutError'))
        finish({ timedOut: true })
      }, Math.min(timeoutMs, MAX_TIMER_MS))
      timer.unref?.()
      try {
        Promise.resolve(fetch(lat, lon, controller.signal)).then(
          (value) => {
            try {
              finish(outcomeOf(value))
            } catch (error) {
              finish({ error: reason('resolved to an unreadable value', error) })
            }
          },
          (error) => finish({ error: reason('rejected', error) }),
        )
      } catch (error) {
        finish({ error: reason('threw', error) })
      }
    })
}

/**
 * `options` with every custom provider's `fetch` wrapped (a copy; the caller's object is left
 * alone), or `options` itself when it has none. Anything odd is left for the addon to report.
 */
function withWrappedFetchers(options, pending) {
  try {
    const providers = options?.providers
    if (!Array.isArray(providers) || !providers.some((p) => typeof p?.fetch === 'function')) return options
    const wrap = (p) => ({ name: p.name, budget: p.budget, fetch: wrapFetcher(p.fetch, pending) })
    const wrapped = providers.map((p) => (typeof p?.fetch === 'function' ? wrap(p) : p))
    // A copy that still reads every other option as the caller's object would (getters on a
    // prototype included).
    const copy = Object.create(options)
    copy.providers = wrapped
    return copy
  } catch {
    return options
  }
}

/** Aborts every call in flight (the service closed). */
function abortAll(pending) {
  for (const controller of pending) controller.abort(new DOMException('The service closed', 'AbortError'))
  pending.clear()
}

module.exports = { withWrappedFetchers, abortAll }
