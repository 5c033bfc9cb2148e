// The package entry point: the public WeatherService (lib/weather-service.js) over the native
// addon, and the addon's plain functions. The generated loader (index.js) is internal.
'use strict'

const { WeatherService, weatherService } = require('./lib/weather-service.js')
// WeatherProxy is what `service.listen()` resolves to; exported so that the declared class is a
// value too (`instanceof`), as index.d.ts says. It cannot be constructed from JS.
const { WeatherProxy, bucketKey, distanceKm, noopResolved, __napiBindingTarget } = require('./lib/binding.js')

module.exports = { WeatherService, weatherService, WeatherProxy, bucketKey, distanceKm, noopResolved, __napiBindingTarget }
