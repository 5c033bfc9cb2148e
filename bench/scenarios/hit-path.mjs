// Hit path: 1,000 users already cached, `await getWeather(...)` in a tight loop.
//
// Two floors frame it:
// - the JS floor: a plain `Map` lookup of the user's answer, an already resolved Promise, awaited.
//   Nothing in JS answers a cached call for less; the front (lib/front.js) is measured against it.
// - the N-API floor: `noopResolved()`, an already resolved Promise from the addon: the cost of
//   the boundary alone. "weather-cache, front off" (the same service with the front turned off
//   through lib/weather-service.js's `withoutFront`, as the front's differential test does) is
//   every hit crossing N-API, as calls the front does not answer do; it is measured against it.
import { frontHitsOf, withoutFront } from '../../lib/weather-service.js'
import { IMPLEMENTATIONS, SESSION, floor, percentile, since, startUpstream } from '../harness.mjs'

// Each contender gets its own compiled copy of the loops: one shared loop would see every
// contender's call and promise shapes at one `await`, turn megamorphic, and slow them all
// (that measured the floor at 4x its real cost).
const timedLoop = () =>
  new Function('call', 'users', 'n', 'return (async () => { for (let i = 0; i < n; i++) await call(users[i % 1000]) })()')
const sampledLoop = () =>
  new Function(
    'call',
    'users',
    'samples',
    `return (async () => {
      for (let i = 0; i < samples.length; i++) {
        const start = process.hrtime.bigint()
        await call(users[i % 1000])
        samples[i] = Number(process.hrtime.bigint() - start)
      }
    })()`,
  )

export async function hitPath({ quick }) {
  const users = Array.from({ length: 1000 }, (_, i) => ({
    id: `user-${i}`,
    lat: 48.8 + (i % 25) * 0.004,
    lon: 2.3 + Math.floor(i / 25) * 0.004,
  }))
  const upstream = await startUpstream({ latencyMs: 0 })
  const answers = new Map(users.map((u) => [u.id, Promise.resolve(Object.freeze({ condition: 'Clouds', tempC: 21, tempF: 70 }))]))
  const calls = { 'JS floor': (u) => answers.get(u.id), 'N-API floor': () => floor() }
  const closers = []
  const services = {}
  const contenders = { ...IMPLEMENTATIONS, 'weather-cache, front off': IMPLEMENTATIONS['weather-cache'] }
  for (const [name, make] of Object.entries(contenders)) {
    const impl = make(upstream.url, { maxUsers: 10_000 })
    if (name === 'weather-cache, front off') withoutFront(impl.service)
    closers.push(impl.close)
    services[name] = impl.service
    for (const u of users) await impl.getWeather(SESSION, u.id, u.lat, u.lon) // fill the caches
    calls[name] = (u) => impl.getWeather(SESSION, u.id, u.lat, u.lon)
  }
  const perRound = quick ? 50_000 : 300_000
  const rounds = quick ? 2 : 5
  const timings = Object.fromEntries(Object.keys(calls).map((name) => [name, []]))
  const loops = Object.fromEntries(Object.keys(calls).map((name) => [name, { timed: timedLoop(), sampled: sampledLoop() }]))
  for (const [name, call] of Object.entries(calls)) await loops[name].timed(call, users, perRound) // warm up
  // Interleaved rounds, so that machine noise hits every contender alike; the median counts.
  for (let round = 0; round < rounds; round++) {
    for (const [name, call] of Object.entries(calls)) {
      const start = process.hrtime.bigint()
      await loops[name].timed(call, users, perRound)
      timings[name].push(since(start) / perRound)
    }
  }
  const results = {}
  const sampled = quick ? 20_000 : 100_000
  for (const [name, call] of Object.entries(calls)) {
    const samples = new Float64Array(sampled)
    await loops[name].sampled(call, users, samples)
    samples.sort()
    const ns = timings[name].sort((a, b) => a - b)[Math.floor(rounds / 2)]
    results[name] = { nsPerOp: ns, opsPerSec: 1e9 / ns, p50Ns: percentile(samples, 50), p99Ns: percentile(samples, 99) }
  }
  // Each row measures what it says: the front answered every repeat call of the one, none of
  // the other's.
  const repeats = perRound * (rounds + 1) + sampled
  const byFront = Object.fromEntries(['weather-cache', 'weather-cache, front off'].map((name) => [name, frontHitsOf(services[name]) / repeats]))
  for (const close of closers) close()
  await upstream.close()
  if (byFront['weather-cache'] < 0.999 || byFront['weather-cache, front off'] !== 0) {
    throw new Error(`the front answered ${byFront['weather-cache']} of the hits with it and ${byFront['weather-cache, front off']} without it`)
  }
  return results
}
