// `npm run build:image`: the container image of weather-cache-server (Containerfile), built with
// podman from the static binary that `npm run build:cross` leaves in dist/.
//
//   node scripts/build-image.mjs [--target x86_64-unknown-linux-musl|aarch64-unknown-linux-musl] [--tag name]
//
// The build context is staged in a directory of its own (the repository holds gigabytes of
// target/ a build must not send): the binary, this machine's CA bundle, contrib/container's
// passwd and group, and the Containerfile. Default tag: localhost/weather-cache-server:<version>
// (and :latest). __test__/container.test.mjs builds and runs it the same way.
import { spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
export const VERSION = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version
export const IMAGE = 'localhost/weather-cache-server'
const ARCH = { 'x86_64-unknown-linux-musl': 'amd64', 'aarch64-unknown-linux-musl': 'arm64' }
// Where Debian/Ubuntu/Alpine, Fedora/RHEL and others keep the system's CA bundle.
const CA_BUNDLES = ['/etc/ssl/certs/ca-certificates.crt', '/etc/pki/tls/certs/ca-bundle.crt', '/etc/ssl/cert.pem']

/** The static binary `npm run build:cross` leaves for `target`. */
export function serverBinary(target = 'x86_64-unknown-linux-musl') {
  return join(root, 'dist', `weather-cache-server-${target}`)
}

/**
 * Builds the image (synchronously). Returns `{ tag, id, bytes, seconds, output }`; throws with podman's
 * output when the build fails.
 */
export function buildImage({ target = 'x86_64-unknown-linux-musl', tags = [`${IMAGE}:${VERSION}`, `${IMAGE}:latest`], binary = serverBinary(target) } = {}) {
  if (!(target in ARCH)) throw new Error(`no image for ${target} (known: ${Object.keys(ARCH).join(', ')})`)
  if (!existsSync(binary)) throw new Error(`${relative(root, binary)} is missing: run \`npm run build:cross -- --server-only ${target}\` first`)
  const ca = CA_BUNDLES.find((f) => existsSync(f))
  if (!ca) throw new Error(`no CA bundle on this machine (looked for ${CA_BUNDLES.join(', ')}): install ca-certificates`)
  const context = mkdtempSync(join(tmpdir(), 'weather-cache-image-'))
  const started = Date.now()
  try {
    copyFileSync(binary, join(context, 'weather-cache-server'))
    copyFileSync(ca, join(context, 'ca-certificates.crt'))
    for (const f of ['passwd', 'group']) copyFileSync(join(root, 'contrib', 'container', f), join(context, f))
    copyFileSync(join(root, 'Containerfile'), join(context, 'Containerfile'))
    const argv = ['build', '--layers=false', '--arch', ARCH[target], '--build-arg', `VERSION=${VERSION}`, ...tags.flatMap((t) => ['--tag', t]), '--file', join(context, 'Containerfile'), context]
    const build = spawnSync('podman', argv, { encoding: 'utf8' })
    const output = `${build.stdout}${build.stderr}`
    if (build.error) throw new Error(`podman: ${build.error.message}`)
    if (build.status !== 0) throw new Error(`podman ${argv.join(' ')} exited with ${build.status}:\n${output}`)
    const inspect = spawnSync('podman', ['image', 'inspect', '--format', '{{.Id}} {{.Size}}', tags[0]], { encoding: 'utf8' })
    const [id, size] = inspect.stdout.trim().split(' ')
    return { tag: tags[0], id, bytes: Number(size), seconds: (Date.now() - started) / 1000, output }
  } finally {
    rmSync(context, { recursive: true, force: true })
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2)
  const option = (name) => {
    const i = args.indexOf(name)
    return i === -1 ? undefined : args[i + 1]
  }
  const target = option('--target') ?? 'x86_64-unknown-linux-musl'
  const tag = option('--tag')
  try {
    const image = buildImage({ target, ...(tag ? { tags: [tag] } : {}) })
    console.log(`build:image: ${image.tag} (${image.id.slice(0, 12)}), ${(image.bytes / 1024 / 1024).toFixed(2)} MiB, built in ${image.seconds.toFixed(1)} s`)
  } catch (error) {
    console.error(`build:image: ${error.message}`)
    process.exit(1)
  }
}
