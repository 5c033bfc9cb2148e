// Issue 25 #5: with a shared tier, the status shows the budget counters every host shares
// (Redis's) beside this host's, and says which is which. Host A is a proxy in this process,
// host B another process on the same Redis (a real redis-server), both on one loopback upstream.
import assert from 'node:assert/strict'
import { test } from 'node:test'

import { WeatherService } from '../main.js'
import { redisServerInstalled, startRedis } from '../lib/local-redis.mjs'
import { processInstance } from './helpers.mjs'
import { needs } from './needs.mjs'
import { API_KEY, startUpstream } from './upstream.mjs'

const TOKEN = 'status-shared-t0ken-0123456789'

async function status(proxy) {
  const response = await fetch(`${proxy.url}/v1/status`, { headers: { authorization: `Bearer ${TOKEN}` } })
  assert.equal(response.status, 200)
  return response.json()
}

test('the status shows every host\'s calls from Redis beside this host\'s, and says which is which', async (t) => {
  if (!needs(t, redisServerInstalled(), 'redis-server is not installed')) return
  const redis = await startRedis()
  const upstream = await startUpstream()
  const redisOption = { url: redis.url, keyPrefix: `status-${process.pid}` }
  const options = { apiKey: API_KEY, baseUrl: upstream.url, budget: { perMinute: 50 } }
  const service = new WeatherService({ ...options, redis: redisOption })
  const proxy = await service.listen({ port: 0, token: TOKEN })
  const plain = new WeatherService(options)
  const alone = await plain.listen({ port: 0, token: TOKEN })
  let b
  t.after(async () => {
    await proxy.close(1_000)
    await alone.close(1_000)
    service.close()
    plain.close()
    await b?.call('close').catch(() => {})
    await b?.exited
    await upstream.close()
    await redis.stop()
  })

  // Host A: two areas through its proxy. Host B, another process: three areas of its own.
  for (const [lat, lon] of [[48.85, 2.35], [45.76, 4.84]]) {
    const answered = await fetch(`${proxy.url}/v1/weather?lat=${lat}&lon=${lon}`, { headers: { authorization: `Bearer ${TOKEN}` } })
    assert.equal(answered.status, 200)
  }
  b = await processInstance({ ...options, redis: redisOption })
  for (const [lat, lon] of [[43.3, 5.37], [50.63, 3.06], [47.22, -1.55]]) {
    const { results } = await b.call('burst', { count: 3, lat, lon })
    assert.ok(results.every((r) => r.source === 'network' || r.source === 'cache'), JSON.stringify(results))
  }
  assert.equal(upstream.count, 5)

  const shown = await status(proxy)
  const [openweather] = shown.providers
  assert.equal(shown.tier, 'up')
  assert.equal(shown.budgetScope, 'shared', 'the budget is judged by every host\'s calls')
  assert.equal(openweather.callsLastMinute, 2, 'this host\'s own calls')
  assert.equal(openweather.budgetPerMinute, 50)
  assert.equal(openweather.shared.callsToday, 5, 'every host\'s calls, as Redis counts them')
  // A minute (of the Redis server's clock) may have turned since the first call.
  assert.ok(openweather.shared.callsThisMinute <= 5, JSON.stringify(openweather.shared))
  assert.ok(openweather.shared.minuteLeftMs > 0 && openweather.shared.minuteLeftMs <= 60_000)

  // The page draws both, labelled.
  const page = await (await fetch(`${proxy.url}/`, { headers: { authorization: `Bearer ${TOKEN}` } })).text()
  assert.match(page, /this host: calls/)
  assert.match(page, /all hosts \(Redis\): calls this minute \/ budget · today/)

  // Without a tier there is only this host's count.
  const single = await status(alone)
  assert.equal(single.tier, null)
  assert.equal(single.budgetScope, 'host')
  assert.equal(single.providers[0].shared, null)

  // Redis gone: the status still answers, with this host's count alone.
  await redis.kill()
  const down = await status(proxy)
  assert.equal(down.budgetScope, 'host')
  assert.equal(down.providers[0].shared, null)
  assert.equal(down.providers[0].callsLastMinute, 2)
})

test('a slow Redis costs /v1/status one round trip, however many providers (the page asks every 2 s)', async (t) => {
  if (!needs(t, redisServerInstalled(), 'redis-server is not installed')) return
  const { startRelay } = await import('./relay.mjs')
  const redis = await startRedis()
  const relay = await startRelay(redis.port)
  const upstream = await startUpstream()
  const providers = [
    { name: 'openweather', apiKey: API_KEY, baseUrl: upstream.url },
    { name: 'open-meteo', baseUrl: upstream.url },
    { name: 'met-norway', baseUrl: upstream.url, userAgent: 'weather-cache-tests/1 ops@example.com' },
  ]
  const service = new WeatherService({ providers, redis: { url: relay.url, timeoutMs: 5_000, keyPrefix: `slow-${process.pid}` } })
  const proxy = await service.listen({ port: 0, token: TOKEN })
  t.after(async () => {
    await proxy.close(1_000)
    service.close()
    await relay.close()
    await upstream.close()
    await redis.stop()
  })
  assert.equal((await status(proxy)).budgetScope, 'shared')
  // Every reply held back 1.5 s, well inside the tier's 5 s deadline: Redis is slow, not down.
  relay.setLatency(1_500)
  const started = Date.now()
  const slow = await status(proxy)
  const tookMs = Date.now() - started
  assert.equal(slow.budgetScope, 'shared')
  assert.deepEqual(slow.providers.map((p) => p.shared?.callsToday), [0, 0, 0])
  // One round trip is 1.5 s; one per provider would be 4.5 s.
  assert.ok(tookMs < 3_000, `the status took ${tookMs} ms`)
})
