// The Dashboard's weather handlers under Bun's test runner, against weather-cache/testing's fake
// OpenWeather, on the service's manual clock. Run: bun test ./test
// (The same checks under node:test: dashboard-weather.node.mjs.)
import { afterAll, beforeAll, beforeEach, expect, test } from "bun:test";
import { WeatherService } from "weather-cache";
import { startFakeOpenWeather, type FakeOpenWeather } from "weather-cache/testing";

import { DashboardWeather } from "../src/dashboard-weather.js";

const NEW_YORK = { lat: 40.7128, lng: -74.006 };
const LONDON = { lat: 51.5072, lng: -0.1276 };

let fake: FakeOpenWeather;
let service: WeatherService;
let dashboard: DashboardWeather;

beforeAll(async () => {
  fake = await startFakeOpenWeather();
});
afterAll(async () => {
  service?.close();
  await fake.close();
});

beforeEach(() => {
  service?.close();
  fake.reset();
  fake.calls.length = 0;
  fake.setPlace(NEW_YORK.lat, NEW_YORK.lng, { tempC: 20.6, condition: "Clouds" });
  // A service of the test's own: the app uses the shared `weatherService`, configured from the
  // environment; here the clock moves only with advanceTime().
  service = new WeatherService({ apiKey: fake.apiKey, baseUrl: fake.url, clock: "manual" });
  dashboard = new DashboardWeather(service);
});

/** A MentraOS session as the handlers use it; `topRight` records what the glasses show. */
function glasses(userId: string, settings: Record<string, unknown> = {}) {
  const topRight: string[] = [];
  const noop = () => {};
  const session = {
    userId,
    logger: { debug: noop, info: noop, warn: noop, error: noop },
    settings: { getMentraosSetting: (key: string) => settings[key] },
    dashboard: { system: { setTopRight: (text: string) => void topRight.push(text) } },
  };
  return { session, settings, topRight };
}

/** Lets background refreshes (stale-while-revalidate) land. */
async function settled() {
  while (service.stats().inflight > 0) await Bun.sleep(5);
}

test("an unset metricSystemEnabled shows °F; a unit toggle and a walk cost no upstream call", async () => {
  const { session, settings, topRight } = glasses("alice");
  dashboard.startSession("s1", "alice");
  await dashboard.handleLocationUpdate(session, "s1", NEW_YORK);
  expect(topRight.at(-1)).toBe("Clouds, 69°F"); // °F from the unrounded 20.6 °C
  expect(fake.count).toBe(1);

  settings.metricSystemEnabled = true;
  await dashboard.handleMetricSystemChange(session, "s1");
  expect(topRight.at(-1)).toBe("Clouds, 21°C");

  for (let i = 1; i <= 5; i++) await dashboard.handleLocationUpdate(session, "s1", { lat: NEW_YORK.lat + i * 0.002, lng: NEW_YORK.lng });
  const bob = glasses("bob");
  dashboard.startSession("s2", "bob");
  await dashboard.handleLocationUpdate(bob.session, "s2", NEW_YORK);
  expect(bob.topRight.at(-1)).toBe("Clouds, 69°F");
  expect(fake.count).toBe(1); // one call for everyone nearby
});

test("after ten minutes (manual clock) the reading is refreshed", async () => {
  const { session, topRight } = glasses("alice");
  dashboard.startSession("s1", "alice");
  await dashboard.handleLocationUpdate(session, "s1", NEW_YORK);
  fake.setPlace(NEW_YORK.lat, NEW_YORK.lng, { tempC: 25.2, condition: "Rain" });

  service.advanceTime(10 * 60_000 + 1);
  await dashboard.handleLocationUpdate(session, "s1", NEW_YORK);
  expect(topRight.at(-1)).toBe("Clouds, 69°F"); // the stale reading, while a refresh runs
  await settled();
  await dashboard.handleLocationUpdate(session, "s1", NEW_YORK);
  expect(topRight.at(-1)).toBe("Rain, 77°F");
  expect(fake.count).toBe(2);
});

test("a 429 keeps the last reading up and no call is made until Retry-After has passed", async () => {
  const { session, topRight } = glasses("alice");
  dashboard.startSession("s1", "alice");
  await dashboard.handleLocationUpdate(session, "s1", NEW_YORK);

  fake.setDefault({ status: 429, retryAfter: 120 });
  await dashboard.handleLocationUpdate(session, "s1", LONDON);
  await dashboard.handleLocationUpdate(session, "s1", LONDON);
  expect(topRight.at(-1)).toBe("Clouds, 69°F");
  expect(fake.calls.map((c) => c.status)).toEqual([200, 429]); // the second London update waited

  fake.setDefault({ tempC: 11.3, condition: "Drizzle" });
  service.advanceTime(119_999);
  await dashboard.handleLocationUpdate(session, "s1", LONDON);
  expect(topRight.at(-1)).toBe("Clouds, 69°F"); // still cooling down 1 ms before the 120 s
  service.advanceTime(1);
  await dashboard.handleLocationUpdate(session, "s1", LONDON);
  expect(topRight.at(-1)).toBe("Drizzle, 52°F");
  expect(fake.count).toBe(3);
});
