/**
 * The MentraOS Dashboard (src/index.ts of Mentra-Community/Dashboard), reduced to its weather.
 *
 * In the Dashboard the change is one line: `weatherService` is imported from "weather-cache"
 * instead of "./services/weather.service", which is deleted with its test. The handlers are the
 * Dashboard's own; here they live in ./dashboard-weather.js (plain JS, so that its tests run
 * under Node and Bun without a build) and get `weatherService` from this file.
 */
import { AppServer, AppSession, LocationUpdate } from "@mentra/sdk";
import { weatherService } from "weather-cache"; // was: "./services/weather.service"

import { DashboardWeather } from "./dashboard-weather.js";

const PORT = process.env.PORT ? parseInt(process.env.PORT) : 80;
const PACKAGE_NAME = process.env.PACKAGE_NAME;
const API_KEY = process.env.MENTRAOS_API_KEY;

class DashboardServer extends AppServer {
  private readonly weather = new DashboardWeather(weatherService);

  protected async onSession(session: AppSession, sessionId: string, userId: string): Promise<void> {
    this.weather.startSession(sessionId, userId);

    session.location.subscribeToStream({ accuracy: "standard" }, (data: LocationUpdate) => {
      this.weather.handleLocationUpdate(session, sessionId, data);
    });

    // The Dashboard refetches on a unit change; with weather-cache that is a cache hit.
    session.settings.onMentraosSettingChange("metricSystemEnabled", (newValue, oldValue) => {
      session.logger.info(`AugmentOS metricSystemEnabled changed from ${oldValue} to ${newValue} for session ${sessionId}`);
      this.weather.handleMetricSystemChange(session, sessionId);
    });
  }

  protected async onStop(sessionId: string, userId: string, reason: string): Promise<void> {
    this.logger.info({ userId }, `Dashboard session stopped: ${reason}`);
    this.weather.stopSession(sessionId);
  }
}

// Also typed: the call exactly as the Dashboard's fetchWeatherData makes it.
export async function weatherText(session: AppSession, lat: number, lng: number): Promise<string | null> {
  const weatherData = await weatherService.getWeather(session, lat, lng);
  if (!weatherData) return null;
  const useMetric = session.settings.getMentraosSetting("metricSystemEnabled");
  const temp = useMetric ? weatherData.tempC : weatherData.tempF;
  const unit = useMetric ? "°C" : "°F";
  return `${weatherData.condition}, ${temp}${unit}`;
}

if (PACKAGE_NAME && API_KEY) {
  const dashboardServer = new DashboardServer({ packageName: PACKAGE_NAME, port: PORT, apiKey: API_KEY });
  dashboardServer.start().then(() => dashboardServer.logger.info(`Dashboard Manager TPA running on port ${PORT}`));
}
