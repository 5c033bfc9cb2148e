// The proxy's status page (GET /) in a real browser: Debian's chromium driven by
// playwright-core, loading the page from a running proxy after a small fleet flew through it,
// with every request outside 127.0.0.1 refused (the page must work offline). It logs in through
// the page's token form (the server sets an HttpOnly cookie), checks the counters and the entries drawn against /v1/status, and
// saves a screenshot in the test's temp dir (UPDATE_SCREENSHOT=1 also writes
// docs/status-page.png, the README's).
import assert from 'node:assert/strict'
import { copyFileSync, existsSync, mkdtempSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

import { WeatherService } from '../main.js'
import { Fleet } from '../lib/fleet.mjs'
import { API_KEY, answer, startUpstream } from './upstream.mjs'

const CHROMIUM = '/usr/bin/chromium'
const TOKEN = 'status-page-test-token'
const docs = fileURLToPath(new URL('../docs/status-page.png', import.meta.url))
// CI installs chromium: there the test must run, never skip.
const skip = !existsSync(CHROMIUM) && !process.env.CI && 'chromium is not installed (apt-get install chromium)'

test('the status page shows the fleet: counters, entries as disks, requests as dots, a clicked entry\'s next hours', { skip, timeout: 60_000 }, async (t) => {
  const { chromium } = await import('playwright-core')
  const upstream = await startUpstream(answer.forecast(12.4, 'Clouds'))
  const service = new WeatherService({ apiKey: API_KEY, baseUrl: upstream.url, budget: { perMinute: 60 } })
  const proxy = await service.listen({ port: 0, token: TOKEN })
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-gpu'],
  })
  t.after(async () => {
    await browser.close()
    await proxy.close(1_000)
    service.close()
    await upstream.close()
  })

  // A small fleet: 40 drones over Paris, three rounds a minute apart.
  const fleet = new Fleet({ drones: 40, seed: 7, radiusKm: 12 })
  let asked = 0
  for (let round = 0; round < 3; round++) {
    await Promise.all(
      fleet.drones.map(async (drone) => {
        const { lat, lon } = fleet.position(drone)
        const res = await fetch(`${proxy.url}/v1/weather?lat=${lat}&lon=${lon}&user=${drone.id}`, { headers: { authorization: `Bearer ${TOKEN}` } })
        assert.equal(res.status, 200)
        await res.arrayBuffer()
        asked++
      }),
    )
    fleet.step(60)
  }

  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } })
  const outside = []
  await page.route('**/*', (route) => {
    const url = new URL(route.request().url())
    if (url.hostname === '127.0.0.1') return route.continue()
    outside.push(url.href)
    return route.abort()
  })
  // Without the token: the login form; with it, the page.
  const first = await page.goto(`${proxy.url}/`)
  assert.equal(first.status(), 401)
  await page.fill('#token', TOKEN)
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')])
  await page.waitForSelector('body[data-loaded="true"]')
  // The server set the cookie: no script can read it, no other site sends it, and it holds a
  // digest that opens the status routes only, never the token.
  const cookies = await page.context().cookies()
  assert.equal(cookies.length, 1)
  assert.deepEqual([cookies[0].name, cookies[0].httpOnly, cookies[0].sameSite, cookies[0].path], ['weather_cache_status', true, 'Strict', '/'])
  assert.ok(!cookies[0].value.includes(TOKEN))
  assert.equal(await page.evaluate(() => document.cookie), '')

  const status = await (await fetch(`${proxy.url}/v1/status`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()
  const calls = upstream.count
  assert.ok(status.entries.length > 0)
  const drawn = await page.locator('svg#map circle.entry').count()
  assert.equal(drawn, status.entries.length, 'one disk per live entry')
  assert.ok((await page.locator('svg#map circle.request').count()) >= fleet.drones.length, 'the last requests as dots')
  const requests = Number((await page.textContent('#requests')).replaceAll(',', ''))
  assert.ok(requests >= asked, `${requests} requests shown, ${asked} made`)
  assert.match(await page.textContent('#entries-count'), new RegExp(`^${status.entries.length} / `))
  assert.equal(await page.locator('#providers tr[data-provider="openweather"]').count(), 1)
  const provider = await page.textContent('#providers tr[data-provider="openweather"]')
  assert.match(provider, new RegExp(`^openweather${status.providers[0].callsLastMinute} / 60 per minok$`), 'calls against the budget')
  assert.equal(status.providers[0].callsLastMinute, upstream.count)

  // A click on an entry shows its next hours (issue 23), from the same cached answer.
  const disk = page.locator('svg#map circle.entry').first()
  const [lat, lon] = (await disk.getAttribute('data-entry')).split(',').map(Number)
  await disk.dispatchEvent('click')
  await page.waitForFunction(() => document.querySelectorAll('#selected tr').length === 13)
  assert.equal(await page.textContent('#selected-title'), `Next hours at ${lat}, ${lon} (openweather)`)
  const firstHour = await page.locator('#selected tr').nth(1).textContent()
  assert.match(firstHour, /12\.4Clouds0\.0 % · 0\.4 mm4\.5 m\/s9\.1 m\/s$/)
  const selected = (await (await fetch(`${proxy.url}/v1/status?entry=${lat},${lon}`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()).selected
  assert.deepEqual([selected.lat, selected.lon, selected.hours.length], [lat, lon, 12])
  assert.equal(selected.hours[0].time, Math.floor(Date.now() / 3_600_000) * 3_600_000, 'from the current hour')
  assert.equal(status.selected, null, 'nothing selected, no hours')
  assert.equal(calls, upstream.count, 'the hours cost no upstream call')
  assert.deepEqual(outside, [], 'nothing requested outside the proxy')

  const dir = mkdtempSync(join(tmpdir(), 'weather-cache-status-'))
  const shot = join(dir, 'status-page.png')
  await page.screenshot({ path: shot, fullPage: true })
  assert.ok(statSync(shot).size > 10_000)
  if (process.env.UPDATE_SCREENSHOT) copyFileSync(shot, docs)
})

test('another site open in the operator\'s browser can neither spend the budget through 127.0.0.1 nor log the browser in (login CSRF)', { skip, timeout: 60_000 }, async (t) => {
  const { chromium } = await import('playwright-core')
  const { createServer } = await import('node:http')
  const upstream = await startUpstream()
  const service = new WeatherService({ apiKey: API_KEY, baseUrl: upstream.url })
  // Two proxies on loopback: the default (no token) and one with a token and its login form.
  const open = await service.listen({ port: 0 })
  const guarded = await service.listen({ port: 0, token: TOKEN })
  // The other site, on http://localhost (another site than http://127.0.0.1): images and a
  // fetch at the open proxy, and a form posting a token it knows (its own) to the other's /login.
  const evil = createServer((req, res) => {
    res.setHeader('content-type', 'text/html; charset=utf-8')
    res.end(`<!doctype html><body><form id="f" method="post" action="${guarded.url}/login"><input name="token" value="${TOKEN}"></form>
<script>
  for (let i = 0; i < 20; i++) new Image().src = '${open.url}/v1/weather?lat=' + (10 + i) + '&lon=' + (20 + i)
  fetch('${open.url}/v1/weather?lat=-10&lon=-10', { mode: 'no-cors' }).catch(() => {})
  setTimeout(() => document.getElementById('f').submit(), 500)
</script></body>`)
  })
  await new Promise((resolve) => evil.listen(0, '127.0.0.1', resolve))
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-background-networking', '--disable-gpu'] })
  t.after(async () => {
    await browser.close()
    await new Promise((resolve) => evil.close(resolve))
    await open.close(1_000)
    await guarded.close(1_000)
    service.close()
    await upstream.close()
  })
  const context = await browser.newContext()
  const page = await context.newPage()
  const answered = []
  page.on('response', (response) => answered.push([new URL(response.url()).pathname, response.status()]))
  const posted = page.waitForResponse((response) => response.url() === `${guarded.url}/login`)
  await page.goto(`http://localhost:${evil.address().port}/`)
  await posted
  await page.waitForLoadState('load')
  // The redirect a successful login gets would lead to the page: give it the time to happen.
  await page.waitForTimeout(300)
  assert.equal(upstream.count, 0, 'no upstream call made for the other site')
  assert.deepEqual(await context.cookies(guarded.url), [], 'no cookie set by the forged login')
  assert.ok(answered.some(([path, status]) => path === '/login' && status === 403), JSON.stringify(answered))
  // The operator's own login on the page still works.
  const own = await context.newPage()
  assert.equal((await own.goto(`${guarded.url}/`)).status(), 401)
  await own.fill('#token', TOKEN)
  await Promise.all([own.waitForNavigation(), own.click('button[type=submit]')])
  assert.equal((await context.cookies(guarded.url)).length, 1)
  assert.equal((await own.reload()).status(), 200)
})
