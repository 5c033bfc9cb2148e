// Types of `weather-cache/testing` (lib/testing.mjs), written by hand: index.d.ts is generated
// from the Rust sources, this module is plain JavaScript.
import type { IncomingMessage, ServerResponse } from 'node:http'

/**
 * What the fake answers. One of:
 * - a reading: `{ tempC: 20.6, condition: "Clouds" }` (200, in the asked provider's format);
 * - an HTTP error: `{ status: 429, retryAfter: 60 }`, `{ status: 429 }` (no Retry-After),
 *   `{ status: 401 }`, `{ status: 503, message: "..." }` (OpenWeather's `{"cod","message"}` body);
 * - a malformed 200: `{ malformed: "not-json" | "no-temp" | "truncated" }` (`truncated`: the
 *   connection is cut mid-body);
 * - no answer at all: `{ hang: true }` (until the service's timeout, or `close()`).
 *
 * `delayMs` delays that reply (added to the fake's latency).
 */
export type FakeReply = (
  | { tempC: number; condition?: string }
  | { status: number; retryAfter?: number | string; message?: string }
  | { malformed: 'not-json' | 'no-temp' | 'truncated' }
  | { hang: true }
) & { delayMs?: number }

/** One request the fake received. */
export interface FakeCall {
  /** When it arrived (`Date.now()`, wall clock). */
  at: number
  path: string
  /** Which API the path belongs to; `undefined` for an unknown path (answered 404). */
  provider: 'openweather' | 'open-meteo' | 'met-norway' | undefined
  lat: number
  lon: number
  /** The coordinates as sent (how many decimals went upstream). */
  rawLat: string | null
  rawLon: string | null
  /** One Call's `exclude` and `units`, Open-Meteo's `current`. */
  exclude: string | null
  units: string | null
  current: string | null
  /** The key the request carried (the fake's own test key, or what the service was given). */
  appid: string | null
  userAgent: string | undefined
  ifModifiedSince: string | undefined
  /** The status answered, once its head is sent; `undefined` before (and for a request never answered). */
  status: number | undefined
}

/** Low level: answers a request itself. `call` is the request's entry in the call log. */
export type FakeBehaviour = (req: IncomingMessage, res: ServerResponse, call: FakeCall) => void

export interface FakeOpenWeatherOptions {
  /** The key it accepts; any other gets OpenWeather's 401. Default `API_KEY`. */
  apiKey?: string
  /** Where it listens. Default `127.0.0.1`, on a free port. */
  host?: string
  /** Added to every answer. Default 0. */
  latencyMs?: number
  /** The reply for every place (see `setDefault`). Default: deterministic weather per place. */
  reply?: FakeReply
}

export interface FakeOpenWeather {
  /** `http://127.0.0.1:<port>`: the service's `baseUrl`. */
  readonly url: string
  readonly port: number
  /** The key it accepts: the service's `apiKey`. */
  readonly apiKey: string
  /** Every request, oldest first. Empty it with `calls.length = 0`. */
  readonly calls: FakeCall[]
  /** The same array as `calls`. */
  readonly requests: FakeCall[]
  /** `calls.length`. */
  readonly count: number
  /** The reply for every place no `setPlace` covers. */
  setDefault(reply: FakeReply): this
  /**
   * The reply for requests within `withinKm` (default 1) of (lat, lon); where several places
   * cover a request, the nearest answers. Setting a place again replaces it.
   */
  setPlace(lat: number, lon: number, reply: FakeReply, options?: { withinKm?: number }): this
  /** Added to every answer from now on. */
  setLatency(ms: number): this
  /** Low level: `fn` answers every request (the key check aside) until `behave(null)` or `reset()`. */
  behave(fn: FakeBehaviour | null): this
  /** No places, the starting default and latency again, no `behave` (the call log stays). */
  reset(): this
  /** Stops listening and cuts open connections. */
  close(): Promise<void>
}

/** The key a fake accepts unless given `apiKey`. */
export declare const API_KEY: string

/** Starts a fake OpenWeather One Call 3.0 on loopback. Close it when done. */
export declare function startFakeOpenWeather(options?: FakeOpenWeatherOptions): Promise<FakeOpenWeather>

/** A port nothing listens on: `baseUrl: \`http://127.0.0.1:${await closedPort()}\`` is an OpenWeather that cannot be reached. */
export declare function closedPort(): Promise<number>

/** The weather the fake gives a place by default: the same place always gets the same reading. */
export declare function weatherAt(lat: number, lon: number): { celsius: number; main: string }

/** The behaviours replies are made of, for `behave` (this package's own suite uses them). */
export declare const answer: {
  readonly weather: FakeBehaviour
  fixed(celsius: number, main?: string): FakeBehaviour
  /** One Call answers with every forecast product (see `oneCallForecastBody`), made at `now()`. */
  forecast(celsius: number, main?: string, options?: Omit<ForecastBodyOptions, 'now'> & { now?: () => number }): FakeBehaviour
  status(status: number, body?: string, headers?: Record<string, string>): FakeBehaviour
  rateLimited(retryAfter?: number | string): FakeBehaviour
  delayed(ms: number, then?: FakeBehaviour): FakeBehaviour
  readonly hang: FakeBehaviour
  readonly resetMidBody: FakeBehaviour
  readonly garbage: FakeBehaviour
  readonly noTemp: FakeBehaviour
  huge(bytes: number): FakeBehaviour
}

/** The package suite's form: a fake whose every answer comes from `behaviour`. */
export declare function startUpstream(behaviour?: FakeBehaviour): Promise<FakeOpenWeather>

/** One Call 3.0, Open-Meteo and MET Norway bodies with this reading (`bodyFor` picks by the call's provider). */
export declare function oneCallBody(lat: number, lon: number, celsius: number | null, main: string): string
export interface ForecastBodyOptions {
  /** When the answer is made (ms); its hours start at the start of that hour. */
  now?: number
  /** The minute from which `minutely` shows rain; `null` for no `minutely` at all. Default 40. */
  rainInMin?: number | null
  /** Whether the answer carries an alert. Default true. */
  alert?: boolean
  /** The place's `timezone_offset`, seconds. Default 0. */
  timezoneOffset?: number
}
/** A full One Call 3.0 answer: current details, 61 minutes, 48 hours, 8 days, an alert. */
export declare function oneCallForecastBody(lat: number, lon: number, celsius: number, main: string, options?: ForecastBodyOptions): string
export declare function openMeteoBody(celsius: number | null, main: string): string
export declare function metNorwayBody(celsius: number | null, main: string): string
export declare function bodyFor(call: FakeCall, celsius: number | null, main: string): string
