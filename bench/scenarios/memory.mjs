// Memory: RSS growth per tracked user (200,000 users) and per shared entry (filling the shared
// cache), and for weather-cache also per shared entry whose answers carry every forecast product
// (One Call with minutely, 48 hours, 8 days and an alert: issue 23). A service whose callers never
// ask for products pays for them only when its provider sends them. Each measurement runs in a fresh child process (`--expose-gc`); the figure is the slope
// between the half-filled and the filled state, so one-off growth (heap warm-up, connection
// pools) does not count.
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

import { IMPLEMENTATIONS, SESSION, startUpstream } from '../harness.mjs'

const here = fileURLToPath(import.meta.url)

export async function memory({ quick }) {
  const users = quick ? 40_000 : 200_000
  const entries = quick ? 10_000 : 20_000
  const results = {}
  for (const name of Object.keys(IMPLEMENTATIONS)) {
    const run = (mode, count, variant = 'plain') =>
      JSON.parse(execFileSync(process.execPath, ['--expose-gc', here, name, mode, String(count), variant], { encoding: 'utf8', maxBuffer: 1 << 20 }))
    const [perUser, perEntry] = [run('users', users), run('entries', entries)]
    // A figure per user (entry) only holds if they are all held: a service that dropped most of
    // them would grow by little and meet its target. weather-cache says what it holds.
    for (const [what, asked, held] of [['users', users, perUser.held], ['shared entries', entries, perEntry.held]]) {
      if (held !== undefined && held < asked) throw new Error(`${name} held ${held} of the ${asked} ${what} it was given`)
    }
    results[name] = { bytesPerUser: perUser.bytesPerItem, bytesPerSharedEntry: perEntry.bytesPerItem, users, entries }
    if (name === 'weather-cache') {
      // A service created with `products: false`, and one whose answers carry every product.
      for (const [variant, label] of [['products-off', 'products: false'], ['products', 'with every product']]) {
        const r = run('entries', entries, variant)
        if (r.held < entries) throw new Error(`${name} (${label}) held ${r.held} of the ${entries} shared entries it was given`)
        results[`${name}, ${label}`] = { bytesPerUser: '–', bytesPerSharedEntry: r.bytesPerItem, users: 0, entries }
      }
    }
  }
  return results
}

async function settled() {
  for (let i = 0; i < 4; i++) {
    globalThis.gc()
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return process.memoryUsage().rss
}

async function inBatches(count, size, call) {
  for (let start = 0; start < count; start += size) {
    const batch = []
    for (let i = start; i < Math.min(count, start + size); i++) batch.push(call(i))
    await Promise.all(batch)
  }
}

/**
 * Child: `node --expose-gc memory.mjs <implementation> users|entries <count> <variant>`: `plain`
 * (One Call answers as the Dashboard gets them: `current` only), `products` (answers with every
 * forecast product) or `products-off` (plain answers, a service with `products: false`).
 */
async function child(name, mode, count, variant) {
  const upstream = await startUpstream({ latencyMs: 0, forecasts: variant === 'products', epochMs: Date.now() })
  const options = mode === 'users' ? { maxUsers: count + 1000 } : { sharedCapacity: count, maxUsers: 1000 }
  if (variant === 'products-off') options.products = false
  const impl = IMPLEMENTATIONS[name](upstream.url, options)
  const half = Math.floor(count / 2)
  let bytes
  if (mode === 'users') {
    // Every user asks about the same (cached) spot: what grows is per-user state only.
    await impl.getWeather(SESSION, 'first', 45, 7)
    await inBatches(half, 1000, (i) => impl.getWeather(SESSION, `user-${String(i).padStart(7, '0')}`, 45, 7))
    const middle = await settled()
    await inBatches(count - half, 1000, (i) => impl.getWeather(SESSION, `user-${String(half + i).padStart(7, '0')}`, 45, 7))
    bytes = (await settled()) - middle
  } else {
    // Distinct areas 0.15° apart (beyond each other's 5 km), all fetched by one user.
    const at = (i) => ({ lat: -40 + Math.floor(i / 400) * 0.15, lon: -60 + (i % 400) * 0.15 })
    const fill = (from, n) => inBatches(n, 100, (i) => impl.getWeather(SESSION, 'filler', at(from + i).lat, at(from + i).lon))
    await fill(0, half)
    await impl.settle()
    const middle = await settled()
    await fill(half, count - half)
    await impl.settle()
    bytes = (await settled()) - middle
  }
  const stats = impl.service.stats?.()
  const held = stats === undefined ? undefined : mode === 'users' ? stats.users : stats.sharedEntries
  impl.close()
  await upstream.close()
  process.stdout.write(JSON.stringify({ bytesPerItem: bytes / (count - half), held }))
}

if (process.argv[1] === here) await child(process.argv[2], process.argv[3], Number(process.argv[4]), process.argv[5] ?? 'plain')
