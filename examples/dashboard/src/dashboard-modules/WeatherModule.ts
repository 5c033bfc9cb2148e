// Legacy weather module of the Dashboard (a short stand-in for the original), kept untouched:
// nothing imports it any more, src/index.ts uses weather-cache instead.
export interface WeatherModuleResult {
  condition: string;
  avg_temp_f: number;
}

export class WeatherModule {
  private readonly apiKey = process.env.OPEN_WEATHER_API_KEY ?? "";

  async fetchWeatherForecast(latitude: number, longitude: number): Promise<WeatherModuleResult | null> {
    const url = `https://api.openweathermap.org/data/3.0/onecall?lat=${latitude}&lon=${longitude}&exclude=minutely,hourly,daily,alerts&units=imperial&appid=${this.apiKey}`;
    try {
      const response = await fetch(url);
      const data = (await response.json()) as { current?: { temp?: number; weather?: { main?: string }[] } };
      return {
        condition: data.current?.weather?.[0]?.main ?? "Unknown",
        avg_temp_f: Math.round(data.current?.temp ?? 0),
      };
    } catch {
      return null;
    }
  }
}
