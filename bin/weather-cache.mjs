#!/usr/bin/env node
// weather-cache's command line: `serve` (the drone proxy) and `demo` (the fleet simulation).
import { UsageError } from '../lib/cli-args.mjs'
import { DEMO_HELP, demoOptions, formatRestart, formatSummary, progressBar, runDemo } from '../lib/demo.mjs'
import { formatInstancesSummary, runInstancesDemo } from '../lib/demo-instances.mjs'
import { serve } from '../lib/serve.mjs'

const HELP = `Usage: weather-cache <command> [options]

Commands:
  serve   run the weather proxy (HTTP) in front of OpenWeather
  demo    simulate a drone fleet on an embedded upstream (no API key, no network)

Run \`weather-cache <command> --help\` for a command's options.`

const [command, ...args] = process.argv.slice(2)

try {
  // serve's flags, messages and exit codes are the weather-cache-server binary's (lib/serve.mjs).
  if (command === 'serve') serve(args)
  else if (command === 'demo') await demo(args)
  else if (command === undefined || command === 'help' || command === '--help' || command === '-h') console.log(HELP)
  else throw new UsageError(`unknown command: ${command}`)
} catch (error) {
  if (!(error instanceof UsageError)) throw error
  console.error(`weather-cache: ${error.message}\nRun \`weather-cache ${command && command !== 'help' ? `${command} ` : ''}--help\` for usage.`)
  process.exitCode = 2
}

async function demo(args) {
  const options = demoOptions(args)
  if (options.help) return console.log(DEMO_HELP)
  if (options.redis && options.instances === 1) throw new UsageError('--redis goes with --instances')
  if (options.instances > 1) return instancesDemo(options)
  if (options.restartAt !== undefined) return restartDemo(options)
  const tty = process.stdout.isTTY && !options.json
  let lastLine = 0
  const onProgress = (done, total, stats) => {
    if (options.json) return
    if (tty) {
      if (Date.now() - lastLine > 100 || done === total) {
        process.stdout.write(`\r${progressBar(done, total, stats, options.minutes)}`)
        lastLine = Date.now()
      }
    } else if (done % Math.max(1, Math.round(total / 6)) === 0 || done === total) {
      console.log(progressBar(done, total, stats, options.minutes))
    }
  }
  if (!options.json) {
    console.log(`weather-cache demo: ${options.drones.toLocaleString('en-US')} drones, ${options.minutes} simulated minutes against a simulated OpenWeather on 127.0.0.1`)
  }
  const summary = await runDemo(options, onProgress)
  if (options.json) console.log(JSON.stringify(summary))
  else console.log(`${tty ? '\n' : ''}\n${formatSummary(summary)}`)
}

async function restartDemo(options) {
  if (options.restartAt >= options.minutes) throw new UsageError(`--restart-at must be before the end (--minutes ${options.minutes})`)
  if (!options.json) console.log(`weather-cache demo: ${options.drones.toLocaleString('en-US')} drones, restarted at minute ${options.restartAt}, with and without a snapshot`)
  const warm = await runDemo({ ...options, snapshot: true })
  const cold = await runDemo({ ...options, snapshot: false })
  if (options.json) console.log(JSON.stringify({ withSnapshot: warm, withoutSnapshot: cold }))
  else console.log(`\n${formatRestart(warm, cold)}`)
}

async function instancesDemo(options) {
  const tty = process.stdout.isTTY && !options.json
  if (!options.json) console.log(`weather-cache demo: ${options.drones.toLocaleString('en-US')} drones through 1 and ${options.instances} instances, with and without a shared tier`)
  let summary
  try {
    summary = await runInstancesDemo(options, (label, done, total) => {
      if (tty && (done % 10 === 0 || done === total)) process.stdout.write(`\r  ${label}: ${done}/${total} steps   `)
    })
  } catch (error) {
    if (error.usage) throw new UsageError(error.message)
    throw error
  }
  if (options.json) console.log(JSON.stringify(summary))
  else console.log(`${tty ? '\n' : ''}\n${formatInstancesSummary(summary)}`)
}
