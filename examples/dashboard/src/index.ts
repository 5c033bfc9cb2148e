// The MentraOS Dashboard, reduced to its weather: how it uses weather-cache.
//
// Before: every location update called OpenWeather through dashboard-modules/WeatherModule.ts
// (and a unit toggle forced another call), so the app was rate limited. Now every update asks
// the shared cache, which answers nearby requests without a call, coalesces concurrent ones,
// backs off on 429 and keeps Celsius so that °F is only a rendering choice.
import { AppServer, type AppSession, type LocationUpdate } from "@mentra/sdk";
import { weatherService, type WeatherSummary } from "weather-cache";

import { DashboardWeather, METRIC_SETTING } from "./weather.js";

class DashboardServer extends AppServer {
  private readonly weather = new DashboardWeather(weatherService, (session, _sessionId, text) =>
    session.dashboard.content.writeToMain(text),
  );

  protected override async onSession(session: AppSession, sessionId: string, userId: string): Promise<void> {
    session.logger.info({ userId }, "dashboard session started");
    session.location.subscribeToStream({ accuracy: "standard" }, (update: LocationUpdate) => {
      void this.handleLocationUpdate(session, sessionId, update);
    });
    // No forced refresh on a unit change any more: re-render from the cached summary.
    session.settings.onMentraosSettingChange<boolean>(METRIC_SETTING, () => {
      this.weather.onMetricSystemChanged(session, sessionId);
    });
  }

  protected override async onStop(sessionId: string, userId: string, reason: string): Promise<void> {
    this.weather.forget(sessionId);
  }

  private async handleLocationUpdate(session: AppSession, sessionId: string, { lat, lng }: LocationUpdate) {
    await this.fetchWeatherData(session, sessionId, lat, lng);
  }

  /** The call that replaced WeatherModule: `weatherService.getWeather(session, session.userId, lat, lng)`. */
  private async fetchWeatherData(session: AppSession, sessionId: string, lat: number, lng: number) {
    await this.weather.fetchWeatherData(session, sessionId, lat, lng);
  }

  /** For diagnostics: the summary the session last saw. */
  latestWeather(sessionId: string): WeatherSummary | undefined {
    return this.weather.latest.get(sessionId);
  }
}

// Also typed: the 3-argument form the Dashboard used before, an AppSession passed without casts.
export async function weatherText(session: AppSession, lat: number, lng: number): Promise<string | null> {
  const weather = await weatherService.getWeather(session, lat, lng);
  const metric = session.settings.getMentraosSetting<boolean>(METRIC_SETTING, true);
  return weather && `${weather.condition}, ${metric ? `${weather.tempC}°C` : `${weather.tempF}°F`}`;
}

if (process.env.MENTRAOS_PACKAGE_NAME && process.env.MENTRAOS_API_KEY) {
  const server = new DashboardServer({
    packageName: process.env.MENTRAOS_PACKAGE_NAME,
    apiKey: process.env.MENTRAOS_API_KEY,
    port: Number(process.env.PORT ?? 7010),
  });
  void server.start();
}
