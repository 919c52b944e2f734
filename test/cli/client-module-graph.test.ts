import { spawn } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { bundleIsCurrent, loadClientModule, saveClientCodeCache } from '../../src/cli/client-module.js'

const test = suite('cli/module graph of client commands')

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')

/** How long one child that imports modules from sources (through tsx) may take. */
const CHILD_TIMEOUT_MS = 60_000

/** Commands that may load libp2p when loaded: they run a node, a mount, or work on key files. */
const MAY_LOAD_LIBP2P = new Set(['node/start.ts', 'mount.ts', 'identity/create.ts', 'identity/show.ts'])

/** The libp2p stack: what a client command must not load until it connects. */
const LIBP2P = /\/node_modules\/(libp2p|@libp2p\/[^/]+|@chainsafe\/[^/]+|@multiformats\/[^/]+)\//

/** Node-side code: never part of the client path (and so never of its bundle). */
const NODE_SIDE = [
  /\/src\/(node|membership|gateway|mount)\//,
  /\/plugins\//,
  /\/node_modules\/(level|classic-level|@dfs\/(level-store|raft-metadata|replication|placement-region))\//
]

/**
 * A loader hook that appends the URL of every module loaded (ESM, and the first file of each CJS
 * package imported from ESM) to the file its `initialize` is given.
 */
const RECORD_LOADS_HOOKS = `
import { appendFileSync } from 'node:fs'
let out
export function initialize (data) { out = data.out }
export async function load (url, context, next) {
  appendFileSync(out, url + '\\n')
  return await next(url, context)
}`

/** Imports `modules` (absolute paths) in a new node running from sources as the tests do; resolves the URLs loaded. */
async function modulesLoadedBy (modules: string[]): Promise<string[]> {
  const dir = await mkdtemp(join(tmpdir(), 'dfs-graph-'))
  try {
    const out = join(dir, 'loads.txt')
    const script = [
      "import { register } from 'node:module'",
      `register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(RECORD_LOADS_HOOKS)}), import.meta.url, { data: { out: ${JSON.stringify(out)} } })`,
      `for (const m of ${JSON.stringify(modules.map((m) => pathToFileURL(m).href))}) await import(m)`
    ].join('\n')
    const child = spawn(process.execPath, ['--import', './bin/polyfill.js', '--import', 'tsx', '--conditions=dfs-source', '--input-type=module', '-e', script],
      { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'], timeout: CHILD_TIMEOUT_MS })
    let stderr = ''
    child.stderr.on('data', (chunk: Buffer) => { if (stderr.length < 10_000) stderr += chunk.toString() })
    const code = await new Promise<number | null>((resolve, reject) => {
      child.on('error', reject)
      child.on('close', resolve)
    })
    assert.is(code, 0, `importing ${modules.length} modules failed: ${stderr}`)
    return (await readFile(out, 'utf8')).split('\n').filter((line) => line !== '')
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

async function commandFiles (dir: string): Promise<string[]> {
  const files: string[] = []
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) files.push(...await commandFiles(path))
    else if (entry.name.endsWith('.ts')) files.push(path)
  }
  return files
}

test('client commands load no libp2p and no node-side code until they connect', async () => {
  const commandsDir = join(ROOT, 'src', 'commands')
  const clientCommands = (await commandFiles(commandsDir)).filter((f) => !MAY_LOAD_LIBP2P.has(relative(commandsDir, f)))
  assert.ok(clientCommands.length >= 20, `found only ${clientCommands.length} client commands`)
  const loaded = await modulesLoadedBy(clientCommands)
  assert.ok(loaded.some((url) => url.endsWith('/src/cli/base-command.ts')), 'the recording hook saw the base command')
  const offending = loaded.filter((url) => LIBP2P.test(url) || NODE_SIDE.some((re) => re.test(url)))
  assert.equal(offending.slice(0, 10), [], `${offending.length} modules a client command must load only when it connects`)
})

test('the client path (bundled by the build) holds libp2p but no node-side code', async () => {
  const loaded = await modulesLoadedBy([join(ROOT, 'src', 'client', 'cli-entry.ts')])
  assert.ok(loaded.some((url) => /\/node_modules\/libp2p\//.test(url)), 'the client path loads libp2p')
  const offending = loaded.filter((url) => NODE_SIDE.some((re) => re.test(url)))
  assert.equal(offending.slice(0, 10), [], `${offending.length} node-side modules on the client path`)
})

test('from sources the client path is loaded as modules, never from a bundle, and caches no code', async () => {
  assert.is(bundleIsCurrent(), false)
  const cacheDir = await mkdtemp(join(tmpdir(), 'dfs-code-cache-'))
  try {
    await loadClientModule({ cacheDir })
    await saveClientCodeCache()
    assert.equal(await readdir(cacheDir), [])
  } finally {
    await rm(cacheDir, { recursive: true, force: true })
  }
  const client = await loadClientModule()
  assert.is(client.DfsClient, (await import('../../src/client/index.js')).DfsClient)
  assert.is(client.loadIdentityKey, (await import('../../src/net/keys.js')).loadIdentityKey)
  assert.is(await loadClientModule(), client, 'loaded once per process')
})

test.run()
