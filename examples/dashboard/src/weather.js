// @ts-check
// The Dashboard's weather logic, on weather-cache. Plain JavaScript with JSDoc types so that the
// package's tests can run it as is (no build step), while `tsc --noEmit` checks it against the
// real @mentra/sdk and weather-cache declarations like the TypeScript beside it.

/** @typedef {import('@mentra/sdk').AppSession} AppSession */
/** @typedef {import('@mentra/sdk').LocationUpdate} LocationUpdate */
/** @typedef {import('weather-cache').WeatherSummary} WeatherSummary */
/** @typedef {Pick<import('weather-cache').WeatherService, 'getWeather'>} WeatherLookup */
/** @typedef {(session: AppSession, sessionId: string, text: string) => void} Render */

/** The MentraOS setting that picks °C (true, the default) or °F. */
export const METRIC_SETTING = 'metricSystemEnabled'

/**
 * `"Clouds, 21°C"` or `"Clouds, 69°F"`: units are a presentation choice, never a new request.
 * @param {WeatherSummary} weather
 * @param {boolean} metric
 */
export function formatWeather(weather, metric) {
  return `${weather.condition}, ${metric ? `${weather.tempC}°C` : `${weather.tempF}°F`}`
}

export class DashboardWeather {
  /**
   * @param {WeatherLookup} weatherService usually weather-cache's shared `weatherService`
   * @param {Render} render puts the text on the glasses (the dashboard's main area)
   */
  constructor(weatherService, render) {
    this.weatherService = weatherService
    this.render = render
    /** Latest summary per session: what a unit toggle re-renders from. */
    /** @type {Map<string, WeatherSummary>} */
    this.latest = new Map()
  }

  /**
   * Every location update asks the cache; nearby updates are answered without a request.
   * @param {AppSession} session
   * @param {string} sessionId
   * @param {LocationUpdate} update
   */
  async handleLocationUpdate(session, sessionId, update) {
    const { lat, lng } = update
    await this.fetchWeatherData(session, sessionId, lat, lng)
  }

  /**
   * @param {AppSession} session
   * @param {string} sessionId
   * @param {number} lat
   * @param {number} lng
   */
  async fetchWeatherData(session, sessionId, lat, lng) {
    const weather = await this.weatherService.getWeather(session, session.userId, lat, lng)
    // null: upstream trouble (rate limit, outage). Keep showing what we had.
    if (weather) this.latest.set(sessionId, weather)
    this.show(session, sessionId)
  }

  /**
   * The unit toggle: re-render from the cached summary, with no fetch.
   * @param {AppSession} session
   * @param {string} sessionId
   */
  onMetricSystemChanged(session, sessionId) {
    this.show(session, sessionId)
  }

  /**
   * @param {AppSession} session
   * @param {string} sessionId
   * @returns {string | undefined}
   */
  text(session, sessionId) {
    const weather = this.latest.get(sessionId)
    if (!weather) return undefined
    // Metric unless the user turned it off (an unset setting reads undefined).
    return formatWeather(weather, session.settings.getMentraosSetting(METRIC_SETTING) !== false)
  }

  /**
   * @param {AppSession} session
   * @param {string} sessionId
   */
  show(session, sessionId) {
    const text = this.text(session, sessionId)
    if (text !== undefined) this.render(session, sessionId, text)
  }

  /** @param {string} sessionId */
  forget(sessionId) {
    this.latest.delete(sessionId)
  }
}
