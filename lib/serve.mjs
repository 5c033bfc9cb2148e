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
  let stopped = false
  const stop = (signal) => {
    stopping ??= signal
    if (run === null || run.exitCode !== null || stopped) return
    stopped = true
    run.shutdown(stopping).then(() => process.exit(0))
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
  watchParent(stop)
}

/**
 * `npx weather-cache serve` / `npm exec`: npm runs us through `sh -c`, and passes SIGTERM and
 * SIGINT to that shell only. On SIGTERM the shell dies and npm exits, leaving us listening with
 * no one to stop us; SIGINT the shell keeps until we exit ("wait and cooperative exit"), so we
 * would never hear of it. When npm started this process (`npm_command`), we therefore watch the
 * processes between npm and us: one of them gone (npm, the shell) is a SIGTERM; the shell woken
 * while it waits for us (its context switches counted by the kernel: a waiting shell wakes only
 * for a signal, or when we stop) is the SIGINT npm passed on.
 */
function watchParent(stop) {
  if (process.platform !== 'linux' || !process.env.npm_command) return
  const ancestors = lineage()
  const shells = ancestors.filter((pid) => SHELL.test(commandOf(pid))).map((pid) => [pid, switches(pid)])
  const timer = setInterval(() => {
    let signal = null
    if (process.ppid !== ancestors[0] || ancestors.some((pid) => !alive(pid))) signal = 'SIGTERM'
    else if (shells.some(([pid, before]) => switches(pid) !== before)) signal = 'SIGINT'
    if (signal) {
      clearInterval(timer)
      stop(signal)
    }
  }, PARENT_CHECK_MS)
  timer.unref()
}

const SHELL = /^(sh|bash|dash|zsh|ash)$/

/** Our parent, and its parents while they are shells (npm's `sh -c`), up to npm. */
function lineage() {
  const chain = []
  let current = process.ppid
  for (let depth = 0; depth < 4 && current > 1; depth++) {
    chain.push(current)
    if (!SHELL.test(commandOf(current))) break
    current = parentOf(current)
  }
  return chain.length > 0 ? chain : [process.ppid]
}

/** How often the kernel switched to `pid`, as a string ('' once it is gone). */
function switches(pid) {
  try {
    return readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').filter((l) => l.includes('ctxt_switches')).join(',')
  } catch {
    return ''
  }
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
