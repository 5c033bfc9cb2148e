// Regressions found in review: edge cases of closing, options, hostile callers and upstreams.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

import { WeatherService } from '../main.js'
import { recordingLogger, rejectionsReported, until, withService } from './helpers.mjs'
import { API_KEY, answer, startUpstream } from './upstream.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))

function runModule(source, env = {}) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', source], { cwd: root, env: { ...process.env, ...env } })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('exit', (code) => resolve({ code, stdout, stderr }))
  })
}

test('the default instance closed before its first use stays closed', async () => {
  const upstream = await startUpstream()
  try {
    const { code, stdout, stderr } = await runModule(
      `import { weatherService } from './main.js'
       weatherService.close()
       const error = await weatherService.getForecast(null, 'u', 1, 1).then(() => null, (e) => e)
       console.log(JSON.stringify({ code: error?.code, weather: await weatherService.getWeather(null, 'u', 1, 1).catch((e) => e.code) }))`,
      { OPEN_WEATHER_API_KEY: API_KEY, OPEN_WEATHER_BASE_URL: upstream.url },
    )
    assert.equal(code, 0, stderr)
    assert.deepEqual(JSON.parse(stdout), { code: 'ERR_SERVICE_CLOSED', weather: 'ERR_SERVICE_CLOSED' })
    assert.equal(upstream.count, 0)
  } finally {
    await upstream.close()
  }
})

test('a bad OPEN_WEATHER_BASE_URL rejects (never throws) and says where it came from, without the query', async () => {
  const { code, stdout, stderr } = await runModule(
    `import { weatherService } from './main.js'
     let outcome
     try { outcome = await weatherService.getWeather(null, 'u', 1, 1).then(() => 'resolved', (e) => e.code + ' ' + e.message) }
     catch (e) { outcome = 'threw ' + e.message }
     console.log(outcome)`,
    { OPEN_WEATHER_API_KEY: API_KEY, OPEN_WEATHER_BASE_URL: 'ftp://user:pw@example.com/x?appid=SECRET#frag' },
  )
  assert.equal(code, 0, stderr)
  assert.match(stdout, /^ERR_INVALID_ARG_VALUE .*process\.env\.OPEN_WEATHER_BASE_URL/)
  for (const secret of ['SECRET', 'user', 'pw', 'frag']) assert.ok(!stdout.includes(secret), stdout)
})

test('options: raising only initialBackoffMs is fine; errors never echo a key', () => {
  new WeatherService({ preset: 'minimal', initialBackoffMs: 60_000 }).close()
  new WeatherService({ initialBackoffMs: 3_600_000 }).close()
  assert.throws(() => new WeatherService({ initialBackoffMs: 3_600_000, maxBackoffMs: 60_000 }), { code: 'ERR_OUT_OF_RANGE' })
  assert.throws(() => new WeatherService({ apiKey: 987654321 }), (e) => e.code === 'ERR_INVALID_ARG_TYPE' && !e.message.includes('987654321'))
  assert.throws(
    () => new WeatherService({ baseUrl: 'https://k:v@example.com/p?appid=SECRET' }),
    (e) => e.code === 'ERR_INVALID_ARG_VALUE' && !/SECRET|k:v/.test(e.message),
  )
})

test('a signal whose addEventListener throws makes getForecast reject, not throw', () =>
  withService({}, async ({ service }) => {
    const hostile = {
      aborted: false,
      addEventListener() {
        throw new Error('no listeners here')
      },
    }
    let promise
    assert.doesNotThrow(() => (promise = service.getForecast(null, 'u', 1, 1, { signal: hostile })))
    await assert.rejects(promise, /no listeners here/)
  }, answer.delayed(20)))

test('an abort that fires during the call itself is not lost', () =>
  withService({ logLevel: 'debug' }, async ({ service, upstream }) => {
    const controller = new AbortController()
    const log = recordingLogger()
    // A session logger that aborts the caller's signal while the call is still running.
    const logger = { ...log.logger, debug: (obj, msg) => msg === 'weather.cache.miss' && controller.abort() }
    const started = Date.now()
    await assert.rejects(service.getForecast({ logger }, 'u', 1, 1, { signal: controller.signal }), { code: 'ABORT_ERR' })
    assert.ok(Date.now() - started < 1000, 'rejected at once, not after the fetch')
    await until(() => upstream.count === 1, 'the fetch, which goes on for everyone else')
  }, answer.delayed(2000)))

test('redirects are not followed (the key would travel with them)', async () => {
  const target = await startUpstream()
  try {
    await withService({}, async ({ service }) => {
      await assert.rejects(service.getForecast(null, 'u', 1, 1), { code: 'ERR_UPSTREAM_STATUS', status: 302 })
      assert.equal(target.count, 0)
    }, (req, res) => res.writeHead(302, { Location: `${target.url}${req.url}` }).end())
  } finally {
    await target.close()
  }
})

test('advancing the manual clock to absurd times neither wraps nor freezes entries', () =>
  withService({}, async ({ service, upstream }) => {
    await service.getWeather(null, 'u', 1, 1)
    for (let i = 0; i < 4; i++) service.advanceTime(9e18)
    const after = await service.getForecast(null, 'u', 1, 1)
    assert.equal(after.meta.source, 'network')
    assert.equal(upstream.count, 2)
  }))

test('a huge Retry-After caps the cooldown at a day', () =>
  withService({}, async ({ service }) => {
    const error = await service.getForecast(null, 'u', 1, 1).then(() => null, (e) => e)
    assert.equal(error.code, 'ERR_RATE_LIMITED')
    assert.equal(error.retryAfterMs, 86_400_000)
  }, answer.rateLimited('999999999999')))


// Issue 10, binding defects: each test reproduces the reported misuse.

const foreignThis = () => [{}, null, undefined, new Map(), Object.create(WeatherService.prototype), globalThis]

test('#7: the constructor without `new` throws ERR_CONSTRUCT_CALL_REQUIRED and creates nothing', () => {
  for (const call of [() => WeatherService(), () => WeatherService.call({}, {}), () => WeatherService.apply(globalThis, [{}])]) {
    assert.throws(call, (e) => e instanceof TypeError && e.code === 'ERR_CONSTRUCT_CALL_REQUIRED')
  }
  const target = {}
  assert.throws(() => WeatherService.call(target, { apiKey: API_KEY }), { code: 'ERR_CONSTRUCT_CALL_REQUIRED' })
  assert.deepEqual(Reflect.ownKeys(target), [])
  assert.throws(() => WeatherService.prototype.stats.call(target), { code: 'ERR_INVALID_THIS' }, 'not a service')
  assert.throws(() => WeatherService.prototype.stats.call(globalThis), { code: 'ERR_INVALID_THIS' }, 'globalThis untouched')
  // Subclasses still work.
  class Mine extends WeatherService {
    hello() {
      return this.stats().requests
    }
  }
  const mine = new Mine({ clock: 'manual' })
  assert.ok(mine instanceof WeatherService && mine instanceof Mine)
  assert.equal(mine.hello(), 0)
  assert.equal(WeatherService.prototype.constructor, WeatherService)
  mine.close()
})

test('#8: on a foreign `this`, Promise methods reject ERR_INVALID_THIS and the others throw it', async () => {
  const proto = WeatherService.prototype
  for (const self of foreignThis()) {
    for (const [method, args] of [['getWeather', [null, 'u', 1, 1]], ['getForecast', [null, 'u', 1, 1]], ['warmup', ['u', 1, 1]]]) {
      let promise
      assert.doesNotThrow(() => (promise = proto[method].call(self, ...args)), method)
      await assert.rejects(promise, (e) => e instanceof TypeError && e.code === 'ERR_INVALID_THIS', method)
    }
    for (const [method, args] of [['clearUser', ['u']], ['advanceTime', [1]], ['stats', []], ['metricsText', []], ['close', []]]) {
      assert.throws(() => proto[method].call(self, ...args), (e) => e instanceof TypeError && e.code === 'ERR_INVALID_THIS', method)
    }
  }
})

test('#9: ids with lone surrogates are refused, never merged with U+FFFD', () =>
  withService({}, async ({ service, upstream }) => {
    for (const id of ['\uD800', '\uDC00', 'a\uD83D', '\uDE00b']) {
      await assert.rejects(service.getWeather(null, id, 1, 1), { code: 'ERR_INVALID_ARG_VALUE' })
      assert.throws(() => service.clearUser(id), { code: 'ERR_INVALID_ARG_VALUE' })
    }
    // Well-formed ids, U+FFFD and surrogate pairs included, are distinct users.
    await service.getWeather(null, '\uFFFD', 1, 1)
    await service.getWeather(null, '\uD83D\uDE00', 1, 1)
    assert.equal(service.stats().users, 2)
    service.clearUser('\uFFFD')
    assert.equal(service.stats().users, 1, 'clearing one does not clear the other')
    assert.equal(upstream.count, 1)
  }))

test('#10: an options getter or Proxy trap that throws makes the constructor throw', () => {
  const boom = new Error('the getter failed')
  assert.throws(() => new WeatherService({ get apiKey() { throw boom } }), (e) => e === boom)
  assert.throws(() => new WeatherService({ get freshTtlMs() { throw boom } }), (e) => e === boom)
  const hostile = new Proxy({}, { get() { throw boom } })
  assert.throws(() => new WeatherService(hostile), (e) => e === boom)
  const logger = { get warn() { throw boom } }
  assert.throws(() => new WeatherService({ logger }), (e) => e === boom)
})

test('#11: getForecast settles whatever the signal does when the call ends', () =>
  withService({}, async ({ service }) => {
    let reads = 0
    const signals = [
      { aborted: false, addEventListener() {}, get removeEventListener() { throw new Error('getter') } },
      { aborted: false, addEventListener() {}, removeEventListener() { throw new Error('call') } },
      { aborted: false, addEventListener() {}, removeEventListener: 'not a function' },
      { get aborted() { if (reads++ > 0) throw new Error('second read'); return false }, addEventListener() {} },
    ]
    for (const [i, signal] of signals.entries()) {
      const result = await Promise.race([
        service.getForecast(null, `u${i}`, 10 + i, 10, { signal }),
        new Promise((resolve) => setTimeout(() => resolve('never settled'), 2000)),
      ])
      assert.equal(result.meta?.source, 'network', `signal ${i}: ${result}`)
    }
  }, answer.delayed(20)))

test('#12: a logger that returns a rejected Promise causes no unhandled rejection', async () => {
  const unhandled = []
  const onUnhandled = (reason) => unhandled.push(reason)
  process.on('unhandledRejection', onUnhandled)
  try {
    const calls = { session: [], service: [] }
    const asyncLogger = (to) => {
      const logger = {}
      for (const level of ['trace', 'debug', 'info', 'warn', 'error', 'fatal']) {
        logger[level] = async (fields, name) => {
          to.push(name)
          return Promise.reject(new Error(`async ${level}`))
        }
      }
      return logger
    }
    await withService({ logLevel: 'debug', logger: asyncLogger(calls.service) }, async ({ service }) => {
      assert.equal(await service.getWeather({ logger: asyncLogger(calls.session) }, 'u', 1, 1), null)
      assert.equal(await service.getWeather(null, 'v', 2, 2), null) // events to the service logger
      const events = ['weather.request.attempted', 'weather.cache.miss', 'weather.request.sent', 'weather.error.network', 'weather.backoff.state']
      assert.deepEqual(calls.session, events)
      // The service logger's events arrive through a queue, debug and warn each through its own.
      await until(() => calls.service.length === events.length, "the service logger's events")
      assert.deepEqual([...calls.service].sort(), [...events].sort())
      await rejectionsReported()
    }, answer.status(503))
  } finally {
    process.off('unhandledRejection', onUnhandled)
  }
  assert.deepEqual(unhandled.map(String), [])
})

test('#13: impossible temperatures are invalid responses; conditions are capped and printable', async () => {
  await withService({}, async ({ service, upstream }) => {
    await assert.rejects(service.getForecast(null, 'u', 1, 1), { code: 'ERR_UPSTREAM_INVALID_RESPONSE' })
    await assert.rejects(service.getForecast(null, 'u', 1, 1), { code: 'ERR_UPSTREAM_INVALID_RESPONSE' }, 'cooling down')
    assert.equal(upstream.count, 1, 'the area cools down, nothing was cached')
    assert.equal(service.stats().sharedEntries, 0)
  }, (req, res) => res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"current":{"temp":-1e308,"weather":[{"main":"Clear"}]}}'))
  const condition = `Rain\u0000\u001b[2J${'x'.repeat(100_000)}`
  await withService({}, async ({ service }) => {
    const weather = await service.getWeather(null, 'u', 1, 1)
    assert.equal(weather.condition, `Rain[2J${'x'.repeat(57)}`)
    assert.equal(weather.condition.length, 64)
  }, answer.fixed(12, condition))
})

test('#14: maxResponseBytes below 1 KiB is refused', () => {
  for (const bytes of [0, 1, 1023]) {
    assert.throws(() => new WeatherService({ maxResponseBytes: bytes }), { code: 'ERR_OUT_OF_RANGE' })
  }
  new WeatherService({ maxResponseBytes: 1024 }).close()
})

test('#5: the events of a 429 reach a waiter or the service logger when the initiator aborted', async () => {
  const serviceLog = recordingLogger()
  await withService({ logger: serviceLog.logger }, async ({ service, upstream }) => {
    const joinerLog = recordingLogger()
    const controller = new AbortController()
    const initiator = service.getForecast({ logger: recordingLogger().logger }, 'first', 1, 1, { signal: controller.signal })
    const joiner = service.getWeather({ logger: joinerLog.logger }, 'second', 1, 1)
    controller.abort()
    await assert.rejects(initiator, { code: 'ABORT_ERR' })
    assert.equal(await joiner, null)
    assert.deepEqual(joinerLog.names(), ['weather.rate_limited', 'weather.backoff.state'])
    // A marker through the same queue (warn events to the service logger, in order): once it
    // arrives, so would have the 429's events, had they gone there too.
    service.advanceTime(60_000) // past the 429's backoff
    upstream.behave(answer.status(503))
    assert.equal(await service.getWeather(null, 'marker', 20, 20), null)
    await until(() => serviceLog.names().includes('weather.backoff.state'), 'the marker events')
    assert.deepEqual(serviceLog.names(), ['weather.error.network', 'weather.backoff.state'], 'the 429 was delivered once, to the joiner')
  }, answer.delayed(50, answer.rateLimited(30)))

  const otherServiceLog = recordingLogger()
  await withService({ logger: otherServiceLog.logger }, async ({ service }) => {
    const controller = new AbortController()
    const initiator = service.getForecast({ logger: recordingLogger().logger }, 'first', 1, 1, { signal: controller.signal })
    const joiner = service.getWeather(null, 'second', 1, 1) // no logger of its own
    controller.abort()
    await assert.rejects(initiator, { code: 'ABORT_ERR' })
    assert.equal(await joiner, null)
    await until(() => otherServiceLog.names().length === 2, 'the service logger')
    assert.deepEqual(otherServiceLog.names(), ['weather.rate_limited', 'weather.backoff.state'])
  }, answer.delayed(50, answer.rateLimited(30)))
})

// Found in review of the above.

test('the native getWeather checks its receiver too (the type tag before any cast)', async () => {
  const { WeatherService: Native } = await import('../lib/binding.js').then((m) => m.default)
  const getWeather = Native.prototype.getWeather
  for (const self of [{}, null, undefined, new Map(), Object.create(Native.prototype)]) {
    assert.throws(() => getWeather.call(self, null, 'u', 1, 1), { code: 'ERR_INVALID_THIS' })
  }
})

test('an async logger is handled even when the app replaced globalThis.Promise', async () => {
  const unhandled = []
  const onUnhandled = (reason) => unhandled.push(reason)
  process.on('unhandledRejection', onUnhandled)
  const original = globalThis.Promise
  // A promise library whose `then` refuses native promises (as some do).
  globalThis.Promise = class extends original {
    then(...args) {
      if (!(this instanceof globalThis.Promise)) throw new TypeError('not one of ours')
      return super.then(...args)
    }
  }
  try {
    const calls = []
    const logger = {
      warn: async (fields, name) => {
        calls.push(name)
        return original.reject(new Error('async logger'))
      },
    }
    await withService({}, async ({ service }) => {
      assert.equal(await service.getWeather({ logger }, 'u', 1, 1), null)
      assert.deepEqual(calls, ['weather.error.network', 'weather.backoff.state'])
      await rejectionsReported()
    }, answer.status(503))
  } finally {
    globalThis.Promise = original
    process.off('unhandledRejection', onUnhandled)
  }
  assert.deepEqual(unhandled.map(String), [])
})

test("a session logger without warn leaves a fetch's events to the service logger", async () => {
  const serviceLog = recordingLogger()
  await withService({ logger: serviceLog.logger }, async ({ service }) => {
    assert.equal(await service.getWeather({ logger: { info() {} } }, 'u', 1, 1), null)
    await until(() => serviceLog.names().length === 2, 'the service logger')
    assert.deepEqual(serviceLog.names(), ['weather.rate_limited', 'weather.backoff.state'])
  }, answer.rateLimited(30))
})

test('cooldowns stay per area with sharedCapacity: 1', () =>
  withService({ sharedCapacity: 1 }, async ({ service, upstream }) => {
    for (const [lat, lon] of [[9.97, 9.99], [10.01, 10.02], [9.97, 9.99], [10.01, 10.02], [9.97, 9.99], [10.01, 10.02]]) {
      assert.equal(await service.getWeather(null, 'u', lat, lon), null)
    }
    assert.equal(upstream.count, 2)
  }, answer.status(503)))

test('getForecast options whose getter throws reject with that error', () =>
  withService({}, async ({ service, upstream }) => {
    const boom = new Error('options getter')
    await assert.rejects(service.getForecast(null, 'u', 1, 1, { get signal() { throw boom } }), (e) => e === boom)
    await assert.rejects(service.getForecast(null, 'u', 1, 1, { get forceRefresh() { throw boom } }), (e) => e === boom)
    await assert.rejects(service.getForecast(null, 'u', 1, 1, new Proxy({}, { get() { throw boom } })), (e) => e === boom)
    // A fetch started is counted (misses) and in flight at once, before its request leaves.
    const { misses, inflight } = service.stats()
    assert.deepEqual({ misses, inflight }, { misses: 0, inflight: 0 })
    assert.equal(upstream.count, 0)
  }))

test('conditions lose invisible and reordering characters too', () =>
  withService({}, async ({ service }) => {
    assert.equal((await service.getWeather(null, 'u', 1, 1)).condition, 'Rain')
  }, answer.fixed(5, '\u202ERa\u200Bin\u2028\uFEFF')))
