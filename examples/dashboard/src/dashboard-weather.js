// @ts-check
// The weather part of the Dashboard's `DashboardServer` (src/index.ts of
// Mentra-Community/Dashboard), as it reads once `weatherService` comes from weather-cache: the
// same handlers, the same `getWeather(session, lat, lng)` call, the same rendering into the top
// right section. Plain JavaScript with JSDoc types, so that tests run it under Node and Bun with
// no build step, while `tsc --noEmit` checks it against the real @mentra/sdk and weather-cache
// declarations (src/index.ts passes it real `AppSession`s).

/**
 * What these handlers use of an `AppSession` (a real one is one of these).
 * @typedef {object} DashboardSession
 * @property {string} userId
 * @property {{ debug(obj: unknown, msg?: string): void, error(obj: unknown, msg?: string): void }} logger
 * @property {{ getMentraosSetting(key: string): unknown }} settings
 * @property {{ system?: { setTopRight(content: string): void } }} dashboard
 */
/**
 * The Dashboard's per-session state, reduced to the weather.
 * @typedef {object} SessionInfo
 * @property {string} userId
 * @property {{ latitude: number, longitude: number }} [latestLocation]
 * @property {{ timestamp: number, data: string }} [weatherCache]
 */
/** @typedef {Pick<import('weather-cache').WeatherService, 'getWeather'>} WeatherLookup */

export class DashboardWeather {
  /** @param {WeatherLookup} weatherService weather-cache's shared `weatherService` in the app; a test's own instance in tests */
  constructor(weatherService) {
    this.weatherService = weatherService
    /** @type {Map<string, SessionInfo>} */
    this._activeSessions = new Map()
  }

  /**
   * @param {string} sessionId
   * @param {string} userId
   */
  startSession(sessionId, userId) {
    this._activeSessions.set(sessionId, { userId })
  }

  /** @param {string} sessionId */
  stopSession(sessionId) {
    this._activeSessions.delete(sessionId)
  }

  /**
   * The location stream's handler: remember where the user is, then fetch the weather there.
   * @param {DashboardSession} session
   * @param {string} sessionId
   * @param {{ lat: number, lng: number }} data a `LocationUpdate`
   */
  async handleLocationUpdate(session, sessionId, data) {
    const sessionInfo = this._activeSessions.get(sessionId)
    if (!sessionInfo) return
    const { lat, lng } = data
    if (typeof lat !== 'number' || typeof lng !== 'number') {
      session.logger.error({ data }, `Invalid location data for session ${session.userId}`)
      return
    }
    sessionInfo.latestLocation = { latitude: lat, longitude: lng }
    await this.fetchWeatherData(session, sessionId, lat, lng)
    this.updateDashboardSections(session, sessionId)
  }

  /**
   * The `metricSystemEnabled` change handler, as the Dashboard has it: fetch again "regardless of
   * cache". The fetch is a cache hit now, so a unit toggle costs no upstream call.
   * @param {DashboardSession} session
   * @param {string} sessionId
   */
  async handleMetricSystemChange(session, sessionId) {
    const sessionInfo = this._activeSessions.get(sessionId)
    if (sessionInfo && sessionInfo.latestLocation) {
      await this.fetchWeatherData(session, sessionId, sessionInfo.latestLocation.latitude, sessionInfo.latestLocation.longitude, true)
    }
  }

  /**
   * The Dashboard's `fetchWeatherData`, unchanged.
   * @param {DashboardSession} session
   * @param {string} sessionId
   * @param {number} lat
   * @param {number} lng
   */
  async fetchWeatherData(session, sessionId, lat, lng, forceUpdate = false) {
    const logger = session.logger
    logger.debug({ lat, lng, forceUpdate, function: 'fetchWeatherData' }, `Fetching weather data for session ${sessionId}`)
    const sessionInfo = this._activeSessions.get(sessionId)
    if (!sessionInfo) return

    try {
      // null on upstream trouble (no key, rate limit, outage): the last reading stays up.
      const weatherData = await this.weatherService.getWeather(session, lat, lng)

      if (weatherData) {
        // Unset reads `undefined`: Fahrenheit.
        const useMetric = session.settings.getMentraosSetting('metricSystemEnabled')
        logger.debug(`[Weather] Metric system enabled: ${useMetric}`)
        const temp = useMetric ? weatherData.tempC : weatherData.tempF
        const unit = useMetric ? '°C' : '°F'

        sessionInfo.weatherCache = {
          timestamp: Date.now(),
          data: `${weatherData.condition}, ${temp}${unit}`,
        }

        logger.debug(`Weather updated: ${sessionInfo.weatherCache.data}`)
        this.updateDashboardSections(session, sessionId)
      }
    } catch (error) {
      logger.error(error, `Error fetching weather for session ${sessionId}`)
    }
  }

  /**
   * The top right section: the Dashboard shows a calendar event there first, then the weather.
   * @param {SessionInfo} sessionInfo
   */
  formatStatusSection(sessionInfo) {
    return sessionInfo.weatherCache ? sessionInfo.weatherCache.data : ''
  }

  /**
   * @param {DashboardSession} session
   * @param {string} sessionId
   */
  updateDashboardSections(session, sessionId) {
    const sessionInfo = this._activeSessions.get(sessionId)
    if (!sessionInfo) return
    session.dashboard.system?.setTopRight(this.formatStatusSection(sessionInfo))
  }
}
