/**
 * What the multi-node benchmarks share: a scratch directory with its own HOME and identity, `dfs node
 * start` processes that never outlive the bench (Ctrl-C, a crash), and clients opened as the admin.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { rmSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DfsClient } from '../src/client/index.js'
import { createKeyFile } from '../src/net/keys.js'
import { DFS, waitFor } from '../test/e2e/harness.js'
import { shardOfPath } from '../plugins/raft-metadata/src/shards/index.js'

export interface BenchProcess {
  name: string
  dataDir: string
  port: number
  id: string
  addr: string
  proc: ChildProcess
  exited: Promise<unknown>
}

export interface BenchNodes {
  dir: string
  /** The environment the nodes run with (HOME, XDG dirs and admin identity under `dir`): for other dfs processes of the bench. */
  env: NodeJS.ProcessEnv
  /**
   * Starts `dfs node start` in `dataDir` and resolves once it serves; `onStderr` sees every chunk
   * of its log (DEBUG as given to benchNodes) with the time it arrived.
   */
  start: (name: string, dataDir: string, extra: string[], options?: { listen?: string, onStderr?: (chunk: string, at: number) => void }) => Promise<BenchProcess>
  open: (node: { addr: string }, timeoutMs?: number) => Promise<DfsClient>
  close: (c: DfsClient) => Promise<void>
  /** Closes the clients, stops the nodes as a user would (SIGTERM; SIGKILL after 10 s) and removes the directory. */
  shutdown: () => Promise<void>
}

/** `debug`: the DEBUG namespaces the nodes log (keep them off the request path). `nodeFlags`: flags for node itself (e.g. --cpu-prof). */
export async function benchNodes (prefix: string, debug: string, nodeFlags: string[] = []): Promise<BenchNodes> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: join(dir, 'home'),
    XDG_CONFIG_HOME: join(dir, 'home', '.config'),
    XDG_DATA_HOME: join(dir, 'home', '.local', 'share'),
    DFS_IDENTITY: join(dir, 'admin.key'),
    DEBUG: debug
  }
  delete env.DFS_NODE
  delete env.DFS_DATA_DIR
  delete env.DFS_JOIN_TOKEN
  const identityPath = env.DFS_IDENTITY as string
  await createKeyFile(identityPath) // the CLI never creates a key that DFS_IDENTITY names
  const procs = new Set<ChildProcess>()
  const clients = new Set<DfsClient>()

  // Ctrl-C or a crash: nothing may outlive the bench
  let cleaned = false
  const killAllSync = (): void => {
    if (cleaned) return
    cleaned = true
    for (const p of procs) p.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  }
  process.on('exit', killAllSync)
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => { console.error(`\n${sig}: stopping the nodes`); killAllSync(); process.exit(130) })
  }

  const start: BenchNodes['start'] = async (name, dataDir, extra, options = {}) => {
    await mkdir(dataDir, { recursive: true })
    // a killed node leaves its node.json behind: wait for the new process's own line on stdout too
    const proc = spawn(process.execPath, [...nodeFlags, DFS, 'node', 'start', '--data-dir', dataDir, '--listen', options.listen ?? '127.0.0.1:0', '--name', name, '--json', ...extra],
      { env, stdio: ['ignore', 'pipe', 'pipe'] })
    procs.add(proc)
    const exited = new Promise((resolve) => proc.on('close', (code) => { procs.delete(proc); resolve(code) }))
    let stdout = ''
    let stderr = ''
    proc.stdout?.setEncoding('utf8').on('data', (d: string) => { stdout += d })
    proc.stderr?.setEncoding('utf8').on('data', (d: string) => {
      const at = performance.now()
      stderr = (stderr + d).slice(-20_000)
      options.onStderr?.(d, at)
    })
    const info = await waitFor(async () => {
      if (proc.exitCode != null) throw new Error(`node exited with ${proc.exitCode}: ${stderr}`)
      if (!stdout.includes('\n')) return undefined
      return JSON.parse(await readFile(join(dataDir, 'node.json'), 'utf8')) as { id: string, addrs: string[] }
    }, 60_000, `${name} to serve`)
    const port = Number(/\/tcp\/(\d+)/.exec(info.addrs[0])?.[1])
    return { name, dataDir, port, id: info.id, addr: info.addrs[0], proc, exited }
  }

  const open: BenchNodes['open'] = async (node, timeoutMs = 30_000) => {
    const c = await DfsClient.open({ node: node.addr, identityPath, dataDir: dir, timeoutMs })
    clients.add(c)
    return c
  }

  const close: BenchNodes['close'] = async (c) => {
    clients.delete(c)
    await c.close().catch(() => {})
  }

  const shutdown: BenchNodes['shutdown'] = async () => {
    await Promise.all([...clients].map(close))
    await Promise.all([...procs].map(async (p) => {
      const exited = new Promise((resolve) => { if (p.exitCode != null || p.signalCode != null) resolve(null); else p.on('close', resolve) })
      p.kill('SIGTERM')
      const timer = setTimeout(() => p.kill('SIGKILL'), 10_000)
      await exited
      clearTimeout(timer)
    }))
    await rm(dir, { recursive: true, force: true })
  }

  return { dir, env, start, open, close, shutdown }
}

/** What `cluster.shards` answers, as far as the benchmarks read it. */
export interface ShardMap { shards: Array<{ shard: number, leader: string | null }> }

/**
 * The leader of the Raft data group that owns `path`'s shard: with sharded metadata it, not the
 * system group's leader, orders the writes to that path. Waits until every node names the same one.
 */
export async function shardLeaderOf<N> (nodes: N[], path: string, shardsOf: (node: N) => Promise<ShardMap>): Promise<string> {
  const shard = shardOfPath(path)
  return await waitFor(async () => {
    let leader: string | undefined
    for (const n of nodes) {
      const l = (await shardsOf(n)).shards.find((x) => x.shard === shard)?.leader
      if (l == null || (leader != null && l !== leader)) return undefined
      leader = l
    }
    return leader
  }, 60_000, `a leader of the shard of ${path} that every node names`)
}

/** How long the leader of a path's data group must hold before latency is measured through it. */
export const LEADER_STABLE_MS = 3000

/**
 * shardLeaderOf, once the same node has led for LEADER_STABLE_MS: the data groups' leaders spread
 * over the nodes by leadership transfers in the first seconds of a cluster.
 */
export async function stableShardLeaderOf<N> (nodes: N[], path: string, shardsOf: (node: N) => Promise<ShardMap>): Promise<string> {
  let leader = await shardLeaderOf(nodes, path, shardsOf)
  let since = performance.now()
  while (performance.now() - since < LEADER_STABLE_MS) {
    await new Promise((resolve) => setTimeout(resolve, 250))
    const now = await shardLeaderOf(nodes, path, shardsOf)
    if (now !== leader) {
      leader = now
      since = performance.now()
    }
  }
  return leader
}
