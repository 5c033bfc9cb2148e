// The suite's loopback upstream is `weather-cache/testing` (lib/testing.mjs), the fake OpenWeather
// the package exports to its users: one implementation, so that users test against what this
// suite checks. Tests import it from here, under the names they have always used.
export * from '../lib/testing.mjs'
