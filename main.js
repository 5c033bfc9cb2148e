// The package entry point: the public WeatherService (lib/weather-service.js) over the native
// addon, and the addon's plain functions. The generated loader (index.js) is internal.
'use strict'

const { WeatherService, weatherService } = require('./lib/weather-service.js')
const { bucketKey, distanceKm, noopResolved, __napiBindingTarget } = require('./lib/binding.js')

module.exports = { WeatherService, weatherService, bucketKey, distanceKm, noopResolved, __napiBindingTarget }
