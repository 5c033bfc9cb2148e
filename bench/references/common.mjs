// What the reference implementations share: the spec's grid key and haversine, written the way
// a TypeScript service would, and one upstream call with the platform's fetch.

export const R_KM = 6371

export function distanceKm(lat1, lon1, lat2, lon2) {
  const dLat = ((lat2 - lat1) * Math.PI) / 180
  const dLon = ((lon2 - lon1) * Math.PI) / 180
  const s1 = Math.sin(dLat / 2)
  const s2 = Math.sin(dLon / 2)
  const a = s1 * s1 + Math.cos((lat1 * Math.PI) / 180) * Math.cos((lat2 * Math.PI) / 180) * s2 * s2
  return 2 * R_KM * Math.asin(Math.min(1, Math.sqrt(a)))
}

export function bucketKey(lat, lon, gridDeg) {
  const lonStep = gridDeg / Math.max(Math.cos((lat * Math.PI) / 180), 0.01)
  const bucketLat = Math.round(lat / gridDeg) * gridDeg
  const bucketLon = Math.round(lon / lonStep) * lonStep
  return `${bucketLat.toFixed(5)}:${bucketLon.toFixed(5)}`
}

/** One One Call 3.0 request; the summary, or a thrown error. */
export async function fetchCurrent(baseUrl, apiKey, lat, lon) {
  const url = `${baseUrl}/data/3.0/onecall?lat=${lat}&lon=${lon}&exclude=minutely,hourly,daily,alerts&units=metric&appid=${apiKey}`
  const response = await fetch(url)
  if (!response.ok) throw new Error(`HTTP ${response.status}`)
  const data = await response.json()
  const celsius = data?.current?.temp
  if (typeof celsius !== 'number') throw new Error('no current.temp')
  return {
    condition: data.current.weather?.[0]?.main ?? 'Unknown',
    tempC: Math.round(celsius),
    tempF: Math.round((celsius * 9) / 5 + 32),
  }
}
