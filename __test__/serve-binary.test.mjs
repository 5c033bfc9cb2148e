// The serve suites again, against the `weather-cache-server` binary instead of the npm CLI: the
// same flags, defaults, messages, exit codes, signals and answers (issue 22). The binary is
// target/debug/weather-cache-server, built by `cargo test --workspace` (npm test runs it
// first), or the file WEATHER_CACHE_SERVER_BIN names.
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

process.env.WEATHER_CACHE_SERVE_ENTRY = 'binary'
const binary = process.env.WEATHER_CACHE_SERVER_BIN ?? fileURLToPath(new URL('../target/debug/weather-cache-server', import.meta.url))
if (!existsSync(binary)) throw new Error(`${binary} is missing: run \`cargo build -p weather-cache-server\` (npm test's cargo test --workspace builds it)`)

await import('./serve.test.mjs')
await import('./serve-public.test.mjs')
await import('./serve-cli.test.mjs')
