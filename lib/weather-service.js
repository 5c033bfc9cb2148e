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

function codedError(Type, code, message) {
  const error = new Type(message)
  error.code = code
  return error
}

const invalidThis = () => codedError(TypeError, 'ERR_INVALID_THIS', 'Value of "this" must be of type WeatherService')

class Service {
  #native

  /** `wrapped` is internal: the default instance wraps the addon's lazily configured one. */
  constructor(options, wrapped) {
    this.#native = wrapped ?? new native.WeatherService(options)
  }

  static #is(self) {
    return typeof self === 'object' && self !== null && #native in self
  }

  getWeather(session, userId, lat, long) {
    if (!Service.#is(this)) return Promise.reject(invalidThis())
    return this.#native.getWeather(session, userId, lat, long)
  }

  getForecast(session, userId, lat, lon, options) {
    if (!Service.#is(this)) return Promise.reject(invalidThis())
    return this.#native.getForecast(session, userId, lat, lon, options)
  }

  warmup(userId, lat, lon) {
    if (!Service.#is(this)) return Promise.reject(invalidThis())
    return this.#native.warmup(userId, lat, lon)
  }

  listen(options) {
    if (!Service.#is(this)) return Promise.reject(invalidThis())
    return this.#native.listen(options)
  }

  clearUser(userId) {
    if (!Service.#is(this)) throw invalidThis()
    this.#native.clearUser(userId)
  }

  advanceTime(ms) {
    if (!Service.#is(this)) throw invalidThis()
    this.#native.advanceTime(ms)
  }

  stats() {
    if (!Service.#is(this)) throw invalidThis()
    return this.#native.stats()
  }

  metricsText() {
    if (!Service.#is(this)) throw invalidThis()
    return this.#native.metricsText()
  }

  close() {
    if (!Service.#is(this)) throw invalidThis()
    this.#native.close()
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

module.exports = { WeatherService, weatherService }
