import { createHash } from 'node:crypto'
import { readFileSync, statSync, type Stats } from 'node:fs'
import { mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { basename, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Script } from 'node:vm'
import type * as CliEntry from '../client/cli-entry.js'

/** What client commands load to reach a node: the DfsClient and the identity key helpers. */
export type ClientModule = typeof CliEntry

/**
 * The build (`npm run build`) bundles `cli-entry` with its whole libp2p graph into one CommonJS file
 * beside it, so a client command compiles one script instead of loading some 700 modules (about
 * 60 ms instead of 300 on a small machine), and V8's code cache of that script (kept in the user's
 * cache dir) saves most of the rest. Relative to this module: `dist/cli` → `dist/client/bundle.cjs`.
 */
const BUNDLE_URL = new URL('../client/bundle.cjs', import.meta.url)

/** tsc's record of its last build of the core (absent in an installed package, which is never rebuilt). */
const BUILD_INFO_URL = new URL('../../tsconfig.tsbuildinfo', import.meta.url)

/**
 * Code cache files in the cache dir are `client-bundle-<install>-<build>.cache`: one per installed
 * bundle, whose older builds it replaces, and never another install's (several may share a home).
 */
const CODE_CACHE_PREFIX = 'client-bundle-'

/** Largest code cache read back (V8's cache of the ~2 MB bundle is about as large). */
const CODE_CACHE_BYTES_MAX = 64 * 1024 * 1024

let loading: Promise<ClientModule> | undefined

/** The bundle's script and where its code cache belongs, while that cache is missing or was rejected. */
let uncached: { script: Script, path: string } | undefined

/**
 * Loads the client path once per process: the bundle when there is one at least as new as the last
 * `tsc -b` (a later tsc run may have changed what the bundle was made from; then, and when running
 * from sources, the modules themselves). Both run the same code in strict mode, sharing `@dfs/api`
 * (its error classes) with the caller, so only the load time differs. `cacheDir` holds the code cache.
 */
export async function loadClientModule (options: { cacheDir?: string } = {}): Promise<ClientModule> {
  loading ??= load(options.cacheDir)
  return await loading
}

/**
 * Writes the code cache of the bundle when the load found none (or V8 refused it): called once the
 * command has run, so the cache also holds the functions compiled while it ran. Best effort: a cache
 * dir that cannot be written costs speed, never the command.
 */
export async function saveClientCodeCache (): Promise<void> {
  if (uncached === undefined) return
  const { script, path } = uncached
  uncached = undefined
  try {
    const dir = dirname(path)
    const install = basename(path).slice(0, basename(path).lastIndexOf('-') + 1)
    await mkdir(dir, { recursive: true, mode: 0o700 })
    for (const name of await readdir(dir)) {
      if (name.startsWith(install) && name !== basename(path)) await rm(join(dir, name), { force: true })
    }
    const tmp = `${path}.${process.pid}.tmp`
    await writeFile(tmp, script.createCachedData(), { mode: 0o600 })
    await rename(tmp, path)
  } catch {
    // best effort (see above)
  }
}

/** Whether BUNDLE_URL exists and no tsc build of the core ran after it was made. */
export function bundleIsCurrent (): boolean {
  return currentBundle() !== undefined
}

function currentBundle (): Stats | undefined {
  if (!import.meta.url.endsWith('.js')) return undefined
  const bundle = statSync(BUNDLE_URL, { throwIfNoEntry: false })
  if (bundle === undefined) return undefined
  const built = statSync(BUILD_INFO_URL, { throwIfNoEntry: false })
  return built === undefined || built.mtimeMs <= bundle.mtimeMs ? bundle : undefined
}

async function load (cacheDir: string | undefined): Promise<ClientModule> {
  const bundle = currentBundle()
  if (bundle === undefined) return await import('../client/cli-entry.js')
  const api = await import('@dfs/api')
  const filename = fileURLToPath(BUNDLE_URL)
  // V8 checks a cache against the source's length only: the name carries what identifies this build
  const install = hash(filename)
  const build = hash(`${process.version}\0${bundle.size}\0${bundle.mtimeMs}`)
  const cachePath = cacheDir === undefined ? undefined : join(cacheDir, `${CODE_CACHE_PREFIX}${install}-${build}.cache`)
  const cachedData = cachePath === undefined ? undefined : readCache(cachePath)
  const source = readFileSync(filename, 'utf8')
  const script = new Script(`(function (exports, require, module, __filename, __dirname) {'use strict';${source}\n})`, { filename, cachedData })
  const run = script.runInThisContext() as (exports: object, require: (id: string) => unknown, module: { exports: object }, filename: string, dirname: string) => void
  const nodeRequire = createRequire(filename)
  const module = { exports: {} }
  // @dfs/api is left out of the bundle: the caller's copy, so errors keep their classes
  run(module.exports, (id) => id === '@dfs/api' ? api : nodeRequire(id), module, filename, dirname(filename))
  if (cachePath !== undefined && (cachedData === undefined || script.cachedDataRejected === true)) uncached = { script, path: cachePath }
  return module.exports as ClientModule
}

function hash (text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 16)
}

function readCache (path: string): Buffer | undefined {
  try {
    const stats = statSync(path, { throwIfNoEntry: false })
    if (stats === undefined || stats.size > CODE_CACHE_BYTES_MAX) return undefined
    return readFileSync(path)
  } catch {
    return undefined
  }
}
