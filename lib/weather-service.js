// The public `WeatherService`: the native service (src/binding) behind a small JS class that
// checks how it is called. napi-rs's generated glue cannot: calling its constructor without
// `new` turns `this` (globalThis, or any object passed to `.call`) into a half-working service,
// and its methods called on a foreign `this` throw "Illegal invocation" with no `code`.
//
// Here a constructor call without `new` throws ERR_CONSTRUCT_CALL_REQUIRED and creates
// nothing; on a foreign `this`, methods returning a Promise reject ERR_INVALID_THIS (they
// never throw) and the others throw it. The native instance sits in a private field, so no
// caller can reach it or call its methods on something else.
'use strict'

const native = require('./binding.js')
const { abortAll, withWrappedFetchers } = require('./fetcher.js')
const { Front } = require('./front.js')

function codedError(Type, code, message) {
  const error = new Type(message)
  error.code = code
  return error
}

const invalidThis = () => codedError(TypeError, 'ERR_INVALID_THIS', 'Value of "this" must be of type WeatherService')

/** What the addon accepts as a user id (src/binding/args.rs): 1 to 256 UTF-8 bytes, no lone surrogates. */
function validUserId(id) {
  if (id.length === 0 || id.length > 256) return false
  let bytes = 0
  for (let i = 0; i < id.length; i++) {
    const unit = id.charCodeAt(i)
    if (unit < 0x80) bytes += 1
    else if (unit < 0x800) bytes += 2
    else if (unit >= 0xd800 && unit <= 0xdbff) {
      const next = id.charCodeAt(i + 1)
      if (!(next >= 0xdc00 && next <= 0xdfff)) return false
      bytes += 4
      i++
    } else if (unit >= 0xdc00 && unit <= 0xdfff) return false
    else bytes += 3
    if (bytes > 256) return false
  }
  return true
}

/** `session.userId`, or `undefined` when reading it throws (the addon reads it the same way). */
function userIdOf(session) {
  try {
    return session.userId
  } catch {
    return undefined
  }
}

const isSession = (value) => value === undefined || value === null || typeof value === 'object' || typeof value === 'function'

/** For tests: turns the front off for one service (the differential test's "front off"). */
let withoutFront
/** For tests: requests in flight, read without handing the front's hits over first. */
let inflightOf
/** For tests: hits the front answered (0 without one). */
let frontHitsOf

class Service {
  #native
  /** lib/front.js once attached; `null` before, or when it cannot help this service. */
  #front = null
  #frontTried = false
  /** AbortControllers of custom providers' fetches in flight (lib/fetcher.js). */
  #fetches = new Set()

  /** `wrapped` is internal: the default instance wraps the addon's lazily configured one. */
  constructor(options, wrapped) {
    this.#native = wrapped ?? new native.WeatherService(withWrappedFetchers(options, this.#fetches))
  }

  static #is(self) {
    return typeof self === 'object' && self !== null && #native in self
  }

  static {
    withoutFront = (service) => {
      service.#flush()
      service.#front = null
      service.#frontTried = true
    }
    inflightOf = (service) => service.#native.stats().inflight
    frontHitsOf = (service) => service.#front?.answered ?? 0
  }

  getWeather(session, second, third, fourth) {
    if (!Service.#is(this)) return Promise.reject(invalidThis())
    const front = this.#front
    if (typeof second === 'string') {
      // getWeather(session, userId, lat, long)
      if (front !== null && isSession(session)) {
        const hit = front.answer(second, third, fourth)
        if (hit !== undefined) return hit
      }
      return this.#ask(session, second, third, fourth, second)
    }
    if (fourth === undefined && session !== null && (typeof session === 'object' || typeof session === 'function')) {
      // getWeather(session, lat, long): the user is session.userId, read once here.
      const user = userIdOf(session)
      if (typeof user === 'string') {
        if (front !== null) {
          const hit = front.answer(user, second, third)
          if (hit !== undefined) return hit
        }
        // The same call in its 4-argument form (the addon would read the same id).
        if (validUserId(user)) return this.#ask(session, user, second, third, user)
      }
    }
    // Whatever is wrong with these arguments, the addon says so (a call all the same, for `learn`).
    front?.expect()
    return this.#native.getWeather(session, second, third, fourth)
  }

  /** The addon answers; the front learns from it what it may answer next. */
  #ask(session, user, lat, long, learnedUser) {
    this.#flush()
    const front = this.#front
    const call = front?.expect()
    const promise = this.#native.getWeather(session, user, lat, long)
    if (front !== null) front.learn(call, learnedUser, promise)
    else if (!this.#frontTried) this.#attach()
    return promise
  }

  #attach() {
    this.#frontTried = true
    try {
      const channel = this.#native.frontAttach()
      if (channel !== null) this.#front = new Front(this.#native, channel)
    } catch {
      // No front (the addon keeps answering everything).
    }
  }

  /** Hands the front's hits to the addon before anything else reaches it. */
  #flush() {
    const front = this.#front
    if (front === null) return
    try {
      front.flush()
    } catch {
      this.#front = null
    }
  }

  getForecast(session, userId, lat, lon, options) {
    if (!Service.#is(this)) return Promise.reject(invalidThis())
    this.#flush()
    return this.#native.getForecast(session, userId, lat, lon, options)
  }

  warmup(userId, lat, lon) {
    if (!Service.#is(this)) return Promise.reject(invalidThis())
    this.#flush()
    return this.#native.warmup(userId, lat, lon)
  }

  listen(options) {
    if (!Service.#is(this)) return Promise.reject(invalidThis())
    this.#flush()
    return this.#native.listen(options)
  }

  clearUser(userId) {
    if (!Service.#is(this)) throw invalidThis()
    this.#flush()
    this.#native.clearUser(userId)
    this.#front?.forget(userId)
  }

  advanceTime(ms) {
    if (!Service.#is(this)) throw invalidThis()
    this.#flush()
    return this.#native.advanceTime(ms)
  }

  stats() {
    if (!Service.#is(this)) throw invalidThis()
    this.#flush()
    return this.#native.stats()
  }

  metricsText() {
    if (!Service.#is(this)) throw invalidThis()
    this.#flush()
    return this.#native.metricsText()
  }

  close() {
    if (!Service.#is(this)) throw invalidThis()
    this.#flush()
    this.#front?.clear()
    this.#front = null
    this.#frontTried = true
    this.#native.close()
    abortAll(this.#fetches)
  }
}

/**
 * A plain function rather than the class itself, so that a call without `new` can throw a
 * coded error (a class constructor's own TypeError has no `code`). Subclasses work: `new.target`
 * carries their prototype through `Reflect.construct`.
 */
function WeatherService(options) {
  if (new.target === undefined) {
    throw codedError(TypeError, 'ERR_CONSTRUCT_CALL_REQUIRED', "Class constructor WeatherService cannot be invoked without 'new'")
  }
  return Reflect.construct(Service, [options], new.target)
}
Object.defineProperty(WeatherService, 'prototype', { value: Service.prototype, writable: false })
Object.defineProperty(Service.prototype, 'constructor', { value: WeatherService, writable: true, configurable: true })

/** The default instance, configured on first use (see the addon's `weatherService`). */
const weatherService = Reflect.construct(Service, [undefined, native.weatherService], WeatherService)

module.exports = { WeatherService, weatherService, withoutFront, inflightOf, frontHitsOf }
