// `weather-cache serve`: the drone proxy. Flags, configuration, the server and its JSON log
// live in the addon: weather-cache-server's `cli` and `serve`, the very code of the
// `weather-cache-server` binary, so the two cannot drift. This file relays signals.
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'

const { serveCommand } = createRequire(import.meta.url)('./binding.js')

/** How often the parent is checked when npm started us (see `watchParent`). */
const PARENT_CHECK_MS = 250

/** Runs `serve` with `args`; returns once it listens (or has exited with its code). */
export function serve(args) {
  // Signals are taken before the port opens: one sent as soon as "listening" shows must drain.
  let run = null
  let stopping = null
  const stop = (signal) => {
    stopping ??= signal
    if (run === null || run.exitCode !== null || stopping !== signal) return
    run.shutdown(signal).then(() => process.exit(0))
  }
  const reload = () => run?.exitCode === null && run.reload()
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGHUP', reload)
  run = serveCommand(args)
  if (run.exitCode !== null) {
    process.stdout.write(run.stdout)
    process.stderr.write(run.stderr)
    process.exitCode = run.exitCode
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.removeAllListeners(signal)
    return
  }
  if (stopping) stop(stopping)
  watchParent(() => stop('SIGTERM'))
}

/**
 * `npx weather-cache serve` / `npm exec`: npm may end on SIGTERM without passing it on, leaving
 * us listening with no one to stop us. When npm started this process (`npm_command`), its
 * exit is taken as a SIGTERM: we notice that we were handed to another parent.
 */
function watchParent(stop) {
  if (process.platform === 'win32' || !process.env.npm_command) return
  const ancestors = lineage(process.pid)
  const timer = setInterval(() => {
    // Any of the processes between npm and us gone (a shell npm ran, npm itself): npm ended.
    if (ancestors.some((pid) => !alive(pid)) || process.ppid !== ancestors[0]) {
      clearInterval(timer)
      stop()
    }
  }, PARENT_CHECK_MS)
  timer.unref()
}

/** Our parent and its ancestors up to npm (the process whose environment has no npm_command). */
function lineage(pid) {
  const chain = []
  let current = process.ppid
  for (let depth = 0; depth < 4 && current > 1; depth++) {
    chain.push(current)
    if (!/(^|\/)(sh|bash|dash|zsh)$/.test(commandOf(current))) break
    current = parentOf(current)
  }
  return chain.length > 0 ? chain : [process.ppid]
}

function commandOf(pid) {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim()
  } catch {
    return ''
  }
}

function parentOf(pid) {
  try {
    // The fields after the command's closing parenthesis: state, then the parent's pid.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
  } catch {
    return 0
  }
}

function alive(pid) {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return error.code === 'EPERM'
  }
}
