import { spawn, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as assert from 'uvu/assert'
import { DfsClient } from '../../src/client/index.js'
import { getFile } from '../../src/client/files.js'
import { createKeyFile, loadOrCreateKey } from '../../src/net/keys.js'

/**
 * Drives the real `dfs` binary (bin/dfs, built) as separate processes, in a temporary HOME so no
 * test touches the user's identity or data. Everything started is killed and removed by cleanup().
 */

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
export const DFS = join(ROOT, 'bin', 'dfs')

export interface RunResult {
  code: number | null
  stdout: string
  stderr: string
  /** stdout as bytes (for binary output such as `fs get PATH -`). */
  stdoutBytes: Buffer
  /** stdout parsed as JSON when it is one JSON document. */
  json: any
}

export interface NodeHandle {
  proc: ChildProcess
  dataDir: string
  id: string
  addrs: string[]
  /** The address a client passes with --node. */
  addr: string
  stderr: () => string
  /** SIGTERM (or another signal) and wait for exit; resolves the exit code. */
  stop: (signal?: NodeJS.Signals) => Promise<number | null>
}

export class Sandbox {
  readonly dir: string
  readonly env: NodeJS.ProcessEnv
  readonly #procs = new Set<ChildProcess>()

  private constructor (dir: string) {
    this.dir = dir
    this.env = {
      ...process.env,
      HOME: join(dir, 'home'),
      XDG_CONFIG_HOME: join(dir, 'home', '.config'),
      XDG_DATA_HOME: join(dir, 'home', '.local', 'share'),
      DFS_IDENTITY: join(dir, 'admin.key'),
      DFS_NODE: '',
      DFS_DATA_DIR: '',
      DEBUG: ''
    }
    delete this.env.DFS_NODE
    delete this.env.DFS_DATA_DIR
  }

  /** A sandbox whose admin identity (DFS_IDENTITY) exists: the CLI never creates a key DFS_IDENTITY names. */
  static async create (): Promise<Sandbox> {
    const sb = new Sandbox(await mkdtemp(join(tmpdir(), 'dfs-e2e-')))
    await createKeyFile(sb.env.DFS_IDENTITY as string)
    return sb
  }

  /** The key file of another identity `name` in the sandbox, created on first use: pass it as DFS_IDENTITY. */
  async identity (name: string): Promise<string> {
    const path = join(this.dir, `${name}.key`)
    await loadOrCreateKey(path)
    return path
  }

  /**
   * Runs `dfs ARGS` to completion (with a deadline) and captures its output. A command still running
   * at the deadline is asked for a Node diagnostic report (SIGUSR2) before it is killed, and its
   * stderr then ends with where it was (JS stack, libuv handles still active); one that died of a
   * signal says which: a test's failure message (which quotes stderr) tells a hang from a crash.
   */
  async run (args: string[], options: { env?: NodeJS.ProcessEnv, timeoutMs?: number, stdin?: 'ignore' } = {}): Promise<RunResult> {
    const reports = await mkdtemp(join(this.dir, 'report-'))
    const child = spawn(process.execPath, ['--report-on-signal', `--report-directory=${reports}`, DFS, ...args],
      { cwd: this.dir, env: { ...this.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] })
    this.#procs.add(child)
    const out: Buffer[] = []
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => { out.push(d) })
    child.stderr.setEncoding('utf8').on('data', (d) => { stderr += d })
    const timeoutMs = options.timeoutMs ?? 60_000
    const started = Date.now()
    let timedOut = false
    let kill: ReturnType<typeof setTimeout> | undefined
    const timer = setTimeout(() => {
      timedOut = true
      child.kill('SIGUSR2')
      kill = setTimeout(() => { child.kill('SIGKILL') }, 2000)
    }, timeoutMs)
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolveExit) => child.on('close', (c, s) => { resolveExit([c, s]) }))
    clearTimeout(timer)
    clearTimeout(kill)
    this.#procs.delete(child)
    if (timedOut) stderr += `\n[harness: still running after ${timeoutMs} ms, killed]${await hangReport(reports)}`
    else if (signal !== null) stderr += `\n[harness: died of ${signal} after ${Date.now() - started} ms]`
    await rm(reports, { recursive: true, force: true })
    const stdoutBytes = Buffer.concat(out)
    const stdout = stdoutBytes.toString('utf8')
    let json: any
    try { json = JSON.parse(stdout) } catch {}
    return { code, stdout, stderr, stdoutBytes, json }
  }

  /**
   * Starts `dfs node start` and waits until it serves (node.json written): on a free loopback port,
   * or on `listen` (e.g. `listenAddress(old)` to restart a node where the others last saw it).
   */
  async startNode (options: { dataDir?: string, listen?: string, args?: string[], env?: NodeJS.ProcessEnv } = {}): Promise<NodeHandle> {
    const dataDir = options.dataDir ?? await mkdtemp(join(this.dir, 'node-'))
    const faults = ({ ...this.env, ...options.env }).DFS_TEST_FAULTS === '1' ? ['--test-faults'] : [] // the fault hook needs the flag and the variable
    // a join token travels as operators are told to pass it (DFS_JOIN_TOKEN), never on the command line
    const { args, token } = takeJoinToken(options.args ?? [])
    const child = spawn(process.execPath, [DFS, 'node', 'start', '--data-dir', dataDir, '--listen', options.listen ?? '127.0.0.1:0', '--json', ...faults, ...args], {
      cwd: this.dir,
      env: { ...this.env, ...(token !== undefined ? { DFS_JOIN_TOKEN: token } : {}), ...options.env },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    this.#procs.add(child)
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d) => { stdout += d })
    child.stderr.setEncoding('utf8').on('data', (d) => { stderr += d })
    const exited = new Promise<number | null>((resolveExit) => child.on('close', (c) => { this.#procs.delete(child); resolveExit(c) }))
    const info = await waitFor(async () => {
      if (child.exitCode != null) throw new Error(`node exited with ${child.exitCode}: ${stderr}`)
      const text = await readFile(join(dataDir, 'node.json'), 'utf8').catch(() => undefined)
      if (text == null || !stdout.includes('\n')) return undefined
      return JSON.parse(text) as { id: string, addrs: string[] }
    }, 30_000, `node in ${dataDir} to serve`)
    return {
      proc: child,
      dataDir,
      id: info.id,
      addrs: info.addrs,
      addr: info.addrs[0],
      stderr: () => stderr,
      stop: async (signal = 'SIGTERM') => {
        if (child.exitCode == null && child.signalCode == null) child.kill(signal)
        return await exited
      }
    }
  }

  /** An in-process client of `node` with the sandbox's admin identity (the caller closes it). */
  async client (node: { addr: string }, timeoutMs?: number): Promise<DfsClient> {
    return await DfsClient.open({ node: node.addr, identityPath: this.env.DFS_IDENTITY as string, dataDir: this.dir, timeoutMs })
  }

  /** Reads every file of `files` (remote path → sha256Hex of its bytes) through `via`, checking the bytes. */
  async readAll (via: { addr: string, id: string }, files: ReadonlyMap<string, string>, timeoutMs = 20_000): Promise<void> {
    const c = await this.client(via, timeoutMs)
    try {
      for (const [path, digest] of files) {
        const local = join(this.dir, 'out.bin')
        await getFile(c, path, local)
        assert.is(sha256Hex(await readFile(local)), digest, `${path} reads back identical through ${via.id}`)
      }
    } finally {
      await c.close()
    }
  }

  async cleanup (): Promise<void> {
    for (const p of this.#procs) p.kill('SIGKILL')
    await new Promise((r) => setTimeout(r, 50))
    await rm(this.dir, { recursive: true, force: true })
  }
}

/** Splits `--join-token T` (or `--join-token=T`) out of node start arguments. */
function takeJoinToken (args: string[]): { args: string[], token?: string } {
  const rest: string[] = []
  let token: string | undefined
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--join-token' && i + 1 < args.length) token = args[++i]
    else if (args[i].startsWith('--join-token=')) token = args[i].slice('--join-token='.length)
    else rest.push(args[i])
  }
  return token !== undefined ? { args: rest, token } : { args: rest }
}

/** The address `node` listens on (its client address without the PeerId), to start it there again. */
export function listenAddress (node: { addr: string }): string {
  return node.addr.replace(/\/p2p\/[^/]+$/, '')
}

export function sha256Hex (bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}

/** What a Node diagnostic report in `dir` says a hung process was doing (empty without one). */
async function hangReport (dir: string): Promise<string> {
  try {
    const [name] = (await readdir(dir)).filter((f) => f.endsWith('.json'))
    if (name === undefined) return ' (no diagnostic report)'
    const report = JSON.parse(await readFile(join(dir, name), 'utf8'))
    const stack = (report.javascriptStack?.stack ?? []).slice(0, 12).join('\n  ')
    const handles = (report.libuv ?? []).filter((h: any) => h.is_active === true)
      .map((h: any) => [h.type, h.remoteEndpoint != null ? `to ${h.remoteEndpoint.host}:${h.remoteEndpoint.port}` : '', h.filename ?? '', h.firesInMsFromNow != null ? `fires in ${h.firesInMsFromNow} ms` : ''].filter(Boolean).join(' '))
    return `\njs stack: ${report.javascriptStack?.message ?? ''}\n  ${stack}\nactive handles: ${handles.join('; ')}`
  } catch (err) {
    return ` (diagnostic report unreadable: ${(err as Error).message})`
  }
}

/** Polls `probe` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function waitFor<T> (probe: () => Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  while (Date.now() < deadline) {
    try {
      const v = await probe()
      if (v !== undefined) return v
    } catch (err) {
      last = err
      if ((err as Error).message?.startsWith('node exited')) throw err
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  // eslint-disable-next-line @typescript-eslint/no-base-to-string -- the last failure, whatever was thrown
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last != null ? `: ${String(last)}` : ''}`)
}
