// `dfs mount` beside the native path, in the same run, against a three-node cluster of real processes
// on this machine (RF 3, fsync on). A spawned `dfs mount` (the product's command, its own process)
// serves the kernel. The native path is the reference, the `dfs fs put` and `dfs fs get`
// commands (each its own process, start-up included: what a user runs); beside them an in-process
// client does what those commands do (putFile, getFile, paged fs.ls: the client library without a
// process start-up), the stricter comparison. All talk to node n1.
//
//   npm run bench:mount -- [--reps 3] [--mib 256] [--small 1000] [--ls 10000] [--json]
//
// 1. Sequential write: `dd if=SOURCE of=MOUNT/bench/seq-R bs=4M conv=fsync` (SOURCE: --mib MiB of
//    random bytes prepared once in a local file) beside `dfs fs put SOURCE /bench/cli-R` and putFile of
//    SOURCE; the clock runs over the whole dd (and dfs) process, so it includes the mount's commit (one
//    put) on fsync.
// 2. Sequential read: `dd if=MOUNT/... of=/dev/null bs=4M` beside `dfs fs get PATH -` with stdout on
//    /dev/null and getFile into a sink. The mount's caches are dropped by reading a fresh file: dd reads
//    the file putFile wrote in the same rep, which the mount has never opened (no kernel page cache, no
//    read-ahead window of it); `dfs fs get` reads the file dd wrote, getFile the one `dfs fs put` wrote.
//    All hold the same bytes and were written moments before.
// 3. 4 KiB creates: --small files, each one fs.writeFileSync (open O_CREAT, write, close) through
//    the mount, in a worker thread of this process (see createFiles), beside one 4 KiB fs.put upload per file over the client (as bench-s3
//    measures "native"); p50/p99 over every file of every rep, after SMALL_WARMUP unmeasured each way.
// 4. Listing: a directory of --ls files (populated through the client, not the mount), `ls -l` of it
//    through the mount beside the paged fs.ls `dfs fs ls` makes; before each, the mount's attribute and
//    listing caches are let expire (MOUNT_CACHE_TTL_MS).
// Every rep rotates which path goes first. Throughput and listing: median and worst rep.
// Target (issue 17): sequential mount throughput within 25 % of native (`dfs fs put/get`); 4 KiB
// create p50 under 5 ms. The ratios to the in-process client are printed too.
//
// The mount is unmounted and the nodes stopped on exit, also on an error or Ctrl-C.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { closeSync, mkdirSync, openSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs'
import { Worker } from 'node:worker_threads'
import { mkdir, mkdtemp, rmdir, writeFile } from 'node:fs/promises'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { promisify } from 'node:util'
import { getFile, putFile } from '../src/client/files.js'
import type { DfsClient } from '../src/client/index.js'
import { MOUNT_CACHE_TTL_MS } from '../src/mount/ops.js'
import { DFS, waitFor } from '../test/e2e/harness.js'
import { benchNodes, stableShardLeaderOf, type ShardMap } from './bench-nodes.js'
import { fmt, numberOption, pct } from './bench-stats.js'

const args = process.argv.slice(2)
const reps = Math.max(1, numberOption(args, 'reps', 3))
const seqMiB = Math.max(1, numberOption(args, 'mib', 256))
const smallCount = Math.max(1, numberOption(args, 'small', 1000))
const lsCount = Math.max(1, numberOption(args, 'ls', 10_000))
const json = args.includes('--json')

const MiB = 1024 * 1024
const SMALL_BYTES = 4096
/** Unmeasured 4 KiB creates each way before the first rep (connections, spool directory, leader). */
const SMALL_WARMUP = 20
/** Uploads in flight while the listing directory is populated. */
const POPULATE_CONCURRENCY = 32
/** Entries one fs.ls page asks for (what the mount and `dfs fs ls` ask). */
const LS_PAGE = 1000
/** Longest `dfs mount` may take to serve, and to unmount after SIGTERM before it is killed. */
const MOUNT_START_MS = 60_000
const MOUNT_STOP_MS = 15_000
/** Deadline of one dd, ls or 4 KiB upload. */
const DD_TIMEOUT_MS = 30 * 60_000
const LS_TIMEOUT_MS = 10 * 60_000
const SMALL_TIMEOUT_MS = 30_000
/** Most bytes `ls -l` may print (its output is read whole; about 70 bytes a line). */
const LS_OUTPUT_BYTES_MAX = 256 * MiB
/** Mount throughput must be at least this fraction of native (within 25 %). */
const SEQ_RATIO_MIN = 0.75
const CREATE_P50_MS_MAX = 5

const run = promisify(execFile)
const log = (line: string): void => { if (!json) console.log(line) }
const median = (xs: number[]): number => pct(xs, 0.5)
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

// --- the mount process; its clean-up is registered before benchNodes' so it runs first on Ctrl-C
// (the mount is detached before the nodes are killed and their directory removed) ---

/** The mountpoint: its own temporary directory, outside the nodes' (whose removal is recursive). */
const mnt = await mkdtemp(join(tmpdir(), 'dfs-bench-mnt-'))
let mountProc: ChildProcess | undefined
let mountStderr = ''

function isMounted (): boolean {
  return readFileSync('/proc/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === mnt)
}

/** Kills the mount process and detaches the mount lazily; idempotent, synchronous (exit, signals). */
function detachSync (): void {
  if (mountProc !== undefined && mountProc.exitCode == null && mountProc.signalCode == null) mountProc.kill('SIGKILL')
  try {
    if (isMounted()) {
      for (const bin of ['fusermount3', 'fusermount']) {
        try { execFileSync(bin, ['-uz', mnt], { stdio: 'ignore', timeout: 10_000 }); break } catch { /* the other one */ }
      }
    }
    rmdirSync(mnt) // never recursive: were the mount still there, this fails rather than deletes
  } catch { /* already gone, or still mounted: said below */ }
}
process.on('exit', detachSync)
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  // benchNodes' own handler (registered later) stops the nodes and exits; before it exists, exit here
  process.once(sig, () => { detachSync(); if (process.listenerCount(sig) === 0) process.exit(130) })
}

/** Starts `dfs mount` on `mnt` through `node` and resolves once it says it serves. */
async function startMount (env: NodeJS.ProcessEnv, node: string, spoolDir: string): Promise<ChildProcess> {
  const proc = spawn(process.execPath, [DFS, 'mount', mnt, '--json', '--spool-dir', spoolDir, '--node', node], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  mountProc = proc
  let stdout = ''
  proc.stdout?.setEncoding('utf8').on('data', (d: string) => { stdout += d })
  proc.stderr?.setEncoding('utf8').on('data', (d: string) => { mountStderr = (mountStderr + d).slice(-20_000) })
  await waitFor(async () => {
    if (proc.exitCode != null) throw new Error(`dfs mount exited with ${proc.exitCode}: ${mountStderr}`)
    try { return JSON.parse(stdout) as unknown } catch { return undefined }
  }, MOUNT_START_MS, `dfs mount on ${mnt}`)
  if (!isMounted()) throw new Error(`dfs mount says it serves but ${mnt} is not in /proc/mounts`)
  return proc
}

/** SIGTERM (the mount commits and unmounts itself), SIGKILL and a lazy unmount past MOUNT_STOP_MS. */
async function stopMount (): Promise<void> {
  const proc = mountProc
  if (proc !== undefined && proc.exitCode == null && proc.signalCode == null) {
    const closed = new Promise((resolve) => proc.once('close', resolve))
    proc.kill('SIGTERM')
    const timer = setTimeout(() => { console.error(`dfs mount did not stop in ${MOUNT_STOP_MS} ms: killing it`); proc.kill('SIGKILL') }, MOUNT_STOP_MS)
    await closed
    clearTimeout(timer)
  }
  if (isMounted()) detachSync()
  else await rmdir(mnt).catch(() => {})
}

// --- measurements ---

/** MiB/s of `fn` moving seqMiB. */
async function rateOf (fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now()
  await fn()
  return seqMiB / ((performance.now() - t) / 1000)
}

/** Runs dd with `ddArgs` and checks it copied every byte (from its summary line on stderr). */
async function dd (ddArgs: string[]): Promise<void> {
  const { stderr } = await run('dd', [...ddArgs, 'bs=4M'], { timeout: DD_TIMEOUT_MS })
  const copied = Number(/^(\d+) bytes/m.exec(stderr)?.[1])
  if (copied !== seqMiB * MiB) throw new Error(`dd ${ddArgs.join(' ')} copied ${copied} bytes, not ${seqMiB * MiB}: ${stderr}`)
}

/**
 * Runs `dfs ARGS` through node `node` as a user would (its own process, the bench's HOME and
 * identity); stdout goes to /dev/null (`dfs fs get PATH -` writes the file there), stderr is kept
 * for the error.
 */
async function dfsCli (env: NodeJS.ProcessEnv, node: string, cliArgs: string[]): Promise<void> {
  const devNull = openSync('/dev/null', 'w')
  try {
    const proc = spawn(process.execPath, [DFS, ...cliArgs, '--node', node], { env, stdio: ['ignore', devNull, 'pipe'] })
    let stderr = ''
    proc.stderr?.setEncoding('utf8').on('data', (d: string) => { stderr = (stderr + d).slice(-4000) })
    const timer = setTimeout(() => proc.kill('SIGKILL'), DD_TIMEOUT_MS)
    const code = await new Promise<number | null>((resolve) => proc.once('close', resolve))
    clearTimeout(timer)
    if (code !== 0) throw new Error(`dfs ${cliArgs.join(' ')} exited with ${code}: ${stderr}`)
  } finally {
    closeSync(devNull)
  }
}

/** Every entry of `path`, a page at a time, as `dfs fs ls` lists it. */
async function listAll (c: DfsClient, path: string): Promise<number> {
  let n = 0
  let after: string | undefined
  for (;;) {
    const page = await c.call('fs.ls', { path, limit: LS_PAGE, ...(after !== undefined ? { after } : {}) })
    n += page.entries.length
    if (!page.more || page.entries.length === 0) return n
    after = page.entries[page.entries.length - 1].name
  }
}

/**
 * Creates `count` files f0, f1 … of `bytes` in `dir`, each with one writeFileSync (open O_CREAT,
 * write, close), in a worker thread; resolves with each file's milliseconds. Not on this thread: a
 * loop of synchronous calls blocks its event loop for seconds, and the node then aborts the native
 * client's connection (libp2p's connection monitor pings every connection every 10 s and closes one
 * that does not answer in time), which failed the next native put with NodeUnreachable.
 */
async function createFiles (dir: string, count: number, bytes: Uint8Array): Promise<number[]> {
  const worker = new Worker(`
    const { parentPort, workerData } = require('node:worker_threads')
    const { writeFileSync } = require('node:fs')
    const { join } = require('node:path')
    const ms = []
    for (let i = 0; i < workerData.count; i++) {
      const t = performance.now()
      writeFileSync(join(workerData.dir, 'f' + i), workerData.bytes)
      ms.push(performance.now() - t)
    }
    parentPort.postMessage(ms)`, { eval: true, workerData: { dir, count, bytes } })
  try {
    return await new Promise<number[]>((resolve, reject) => {
      worker.once('message', (ms: number[]) => { resolve(ms) })
      worker.once('error', reject)
      worker.once('exit', (code) => { reject(new Error(`the create worker exited with ${code} before it answered`)) })
    })
  } finally {
    await worker.terminate()
  }
}

const bench = await benchNodes('dfs-bench-mount-', process.env.BENCH_DEBUG ?? '', [])
const dir = bench.dir
// the environment benchNodes gives its nodes: the same HOME and admin identity for `dfs mount`
const env = bench.env

try {
  log(`${cpus().length} CPUs, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')} before start`)
  const flags = ['--heartbeat-ms', '1000', '--failure-timeout-ms', '3000']
  const n1 = await bench.start('n1', join(dir, 'n1'), flags)
  const c = await bench.open(n1, 120_000)
  const { token } = await c.call('cluster.token.create', { ttlMs: 3600_000, uses: 2 })
  const others = await Promise.all(['n2', 'n3'].map(async (name) => await bench.start(name, join(dir, name), [...flags, '--peers', n1.addr, '--join-token', token])))
  await waitFor(async () => {
    const { nodes } = await c.call('cluster.nodes', {})
    return nodes.length === 3 && nodes.every((m) => m.health === 'healthy' && m.voter) ? true : undefined
  }, 60_000, 'three healthy voters')
  // the data groups' leaders move in a cluster's first seconds: measure once /bench's has settled
  const ids = [n1, ...others].map((n) => n.addr)
  const clients = new Map<string, DfsClient>([[n1.addr, c]])
  const shardsOf = async (addr: string): Promise<ShardMap> => {
    let cl = clients.get(addr)
    if (cl === undefined) { cl = await bench.open({ addr }); clients.set(addr, cl) }
    return await cl.call('cluster.shards', {})
  }
  await stableShardLeaderOf(ids, '/bench', shardsOf)
  for (const [addr, cl] of clients) if (addr !== n1.addr) await bench.close(cl)

  const spoolDir = join(dir, 'spool')
  await mkdir(spoolDir)
  await startMount(env, n1.addr, spoolDir)
  log(`three nodes; dfs mount on ${mnt} and the native client, both through n1`)
  mkdirSync(join(mnt, 'bench'))

  const source = join(dir, 'source.bin')
  await writeFile(source, randomBytes(seqMiB * MiB))
  const small = randomBytes(SMALL_BYTES)
  const once = async function * (): AsyncGenerator<Uint8Array> { yield small }
  const nativeSmall = async (path: string): Promise<void> => {
    await c.rpc.upload('fs.put', { path, size: SMALL_BYTES }, once(), { timeoutMs: SMALL_TIMEOUT_MS })
  }

  // the listing directory, populated through the client (the mount would time itself)
  const lsDir = '/bench/ls'
  const tiny = randomBytes(16)
  let next = 0
  const t0 = performance.now()
  await Promise.all(Array.from({ length: Math.min(POPULATE_CONCURRENCY, lsCount) }, async () => {
    for (let i = next++; i < lsCount; i = next++) {
      await c.rpc.upload('fs.put', { path: `${lsDir}/f${String(i).padStart(6, '0')}`, size: tiny.byteLength }, (async function * () { yield tiny })(), { timeoutMs: SMALL_TIMEOUT_MS })
    }
  }))
  log(`${lsCount} files put into ${lsDir} in ${fmt((performance.now() - t0) / 1000)} s`)

  for (let i = 0; i < SMALL_WARMUP; i++) {
    if (i === 0) mkdirSync(join(mnt, 'bench', 'warm'))
    writeFileSync(join(mnt, 'bench', 'warm', `m${i}`), small)
    await nativeSmall(`/bench/warm/n${i}`)
  }

  const rates = { mountWrite: [] as number[], cliPut: [] as number[], fsPut: [] as number[], mountRead: [] as number[], cliGet: [] as number[], fsGet: [] as number[] }
  const lat = { mountCreate: [] as number[], fsPut: [] as number[] }
  const lsMs = { mount: [] as number[], fsLs: [] as number[] }
  const sink = (): Writable => new Writable({ write (_chunk, _enc, cb) { cb() } })
  for (let rep = 1; rep <= reps; rep++) {
    // the order rotates so no path always runs on a warmer machine
    const ways = ['mount', 'cli', 'native'] as const
    const order = [0, 1, 2].map((k) => ways[(rep - 1 + k) % 3])
    // creates and listings: the mount beside the in-process client only
    const twoWays = order.filter((w) => w !== 'cli')
    const mountFile = `/bench/seq-${rep}`
    const cliFile = `/bench/cli-${rep}`
    const nativeFile = `/bench/native-${rep}`
    for (const way of order) {
      if (way === 'mount') rates.mountWrite.push(await rateOf(async () => { await dd([`if=${source}`, `of=${mnt}${mountFile}`, 'conv=fsync']) }))
      else if (way === 'cli') rates.cliPut.push(await rateOf(async () => { await dfsCli(env, n1.addr, ['fs', 'put', source, cliFile]) }))
      else rates.fsPut.push(await rateOf(async () => await putFile(c, source, nativeFile)))
    }
    for (const path of [mountFile, cliFile, nativeFile]) {
      const { size } = await c.call('fs.stat', { path })
      if (size !== seqMiB * MiB) throw new Error(`${path} holds ${size} bytes, not ${seqMiB * MiB}`)
    }
    // each way reads another's file: the mount has never opened nativeFile
    for (const way of order) {
      if (way === 'mount') rates.mountRead.push(await rateOf(async () => { await dd([`if=${mnt}${nativeFile}`, 'of=/dev/null']) }))
      else if (way === 'cli') rates.cliGet.push(await rateOf(async () => { await dfsCli(env, n1.addr, ['fs', 'get', mountFile, '-']) }))
      else rates.fsGet.push(await rateOf(async () => await getFile(c, cliFile, sink())))
    }
    await c.call('fs.rm', { path: mountFile })
    await c.call('fs.rm', { path: nativeFile })
    await c.call('fs.rm', { path: cliFile })

    for (const way of twoWays) {
      if (way === 'mount') {
        const d = join(mnt, 'bench', `small-${rep}`)
        mkdirSync(d)
        lat.mountCreate.push(...await createFiles(d, smallCount, small))
      } else {
        for (let i = 0; i < smallCount; i++) {
          const t = performance.now()
          await nativeSmall(`/bench/nsmall-${rep}/f${i}`)
          lat.fsPut.push(performance.now() - t)
        }
      }
    }

    for (const way of twoWays) {
      await sleep(MOUNT_CACHE_TTL_MS + 500) // the mount's (and the kernel's) attributes and listing expire
      const t = performance.now()
      if (way === 'mount') {
        const { stdout } = await run('ls', ['-l', `${mnt}${lsDir}`], { timeout: LS_TIMEOUT_MS, maxBuffer: LS_OUTPUT_BYTES_MAX, env: { ...process.env, LC_ALL: 'C' } })
        lsMs.mount.push(performance.now() - t)
        const lines = stdout.split('\n').filter((l) => l.startsWith('-')).length
        if (lines !== lsCount) throw new Error(`ls -l of ${lsDir} through the mount listed ${lines} files, not ${lsCount}`)
      } else {
        const n = await listAll(c, lsDir)
        lsMs.fsLs.push(performance.now() - t)
        if (n !== lsCount) throw new Error(`fs.ls of ${lsDir} listed ${n} entries, not ${lsCount}`)
      }
    }
    const r = rep - 1
    log(`rep ${rep}: write mount ${fmt(rates.mountWrite[r])} dfs ${fmt(rates.cliPut[r])} client ${fmt(rates.fsPut[r])} MiB/s; ` +
      `read mount ${fmt(rates.mountRead[r])} dfs ${fmt(rates.cliGet[r])} client ${fmt(rates.fsGet[r])} MiB/s; ` +
      `ls mount ${fmt(lsMs.mount[r])} native ${fmt(lsMs.fsLs[r])} ms`)
  }

  // the target's ratios are to the `dfs fs put/get` commands (the native path); the
  // in-process client's are printed beside them
  const ratio = {
    write: median(rates.mountWrite) / median(rates.cliPut),
    read: median(rates.mountRead) / median(rates.cliGet)
  }
  const ratioClient = {
    write: median(rates.mountWrite) / median(rates.fsPut),
    read: median(rates.mountRead) / median(rates.fsGet)
  }
  const met = {
    seqWrite: ratio.write >= SEQ_RATIO_MIN,
    seqRead: ratio.read >= SEQ_RATIO_MIN,
    createP50: median(lat.mountCreate) < CREATE_P50_MS_MAX
  }
  if (json) {
    const sum = (xs: number[], worst: (xs: number[]) => number): { median: number, worst: number, n: number } => ({ median: median(xs), worst: worst(xs), n: xs.length })
    const slowest = (xs: number[]): number => Math.min(...xs)
    const longest = (xs: number[]): number => Math.max(...xs)
    const lats = (xs: number[]): { p50: number, p99: number, n: number } => ({ p50: median(xs), p99: pct(xs, 0.99), n: xs.length })
    console.log(JSON.stringify({
      reps,
      mib: seqMiB,
      small: smallCount,
      ls: lsCount,
      readCache: 'fresh file: the mount reads the file putFile wrote, never opened through it',
      throughputMiBs: {
        mountWrite: sum(rates.mountWrite, slowest),
        cliPut: sum(rates.cliPut, slowest),
        fsPut: sum(rates.fsPut, slowest),
        mountRead: sum(rates.mountRead, slowest),
        cliGet: sum(rates.cliGet, slowest),
        fsGet: sum(rates.fsGet, slowest)
      },
      latencyMs4KiB: { mountCreate: lats(lat.mountCreate), fsPut: lats(lat.fsPut) },
      lsMs: { mount: sum(lsMs.mount, longest), fsLs: sum(lsMs.fsLs, longest) },
      ratio,
      ratioClient,
      target: { ...met, met: met.seqWrite && met.seqRead && met.createP50 },
      loadAverageEnd: loadavg()
    }, null, 2))
  } else {
    const rows: string[][] = [['metric', 'mount', 'dfs fs', 'client', 'mount/dfs fs', 'mount/client', 'target', '']]
    const row = (metric: string, m: number, cli: number | undefined, n: number, target = '', ok?: boolean): void => {
      rows.push([metric, fmt(m), cli === undefined ? '' : fmt(cli), fmt(n), cli === undefined ? '' : fmt(m / cli), fmt(m / n), target, ok === undefined ? '' : ok ? 'ok' : 'MISSED'])
    }
    row(`seq write ${seqMiB} MiB (MiB/s)`, median(rates.mountWrite), median(rates.cliPut), median(rates.fsPut), `ratio >= ${SEQ_RATIO_MIN}`, met.seqWrite)
    row('  worst rep', Math.min(...rates.mountWrite), Math.min(...rates.cliPut), Math.min(...rates.fsPut))
    row(`seq read ${seqMiB} MiB (MiB/s)`, median(rates.mountRead), median(rates.cliGet), median(rates.fsGet), `ratio >= ${SEQ_RATIO_MIN}`, met.seqRead)
    row('  worst rep', Math.min(...rates.mountRead), Math.min(...rates.cliGet), Math.min(...rates.fsGet))
    row('4 KiB create p50 (ms)', median(lat.mountCreate), undefined, median(lat.fsPut), `mount < ${CREATE_P50_MS_MAX}`, met.createP50)
    row('4 KiB create p99 (ms)', pct(lat.mountCreate, 0.99), undefined, pct(lat.fsPut, 0.99))
    row(`ls -l ${lsCount} files (ms)`, median(lsMs.mount), undefined, median(lsMs.fsLs))
    row('  worst rep', Math.max(...lsMs.mount), undefined, Math.max(...lsMs.fsLs))
    console.log('')
    console.log(`RF 3, fsync on; 2 CPUs shared by three nodes, dfs mount and this client; ${reps} reps of ${seqMiB} MiB, ${smallCount} 4 KiB creates each way, a directory of ${lsCount} files`)
    console.log('dfs fs: the `dfs fs put` / `dfs fs get PATH -` commands, each its own process (start-up included)')
    console.log('client: putFile / getFile / 4 KiB fs.put upload / paged fs.ls in this process (what those commands do, without a process start-up)')
    console.log('seq read through the mount reads a fresh file (the one putFile wrote: never opened through the mount, so nothing of it is cached)')
    for (const r of rows) console.log(r.map((cell, i) => i === 0 ? cell.padEnd(30) : i === 6 ? cell.padStart(16) : cell.padStart(i === 7 ? 7 : i >= 4 ? 13 : 9)).join(' '))
    const all = met.seqWrite && met.seqRead && met.createP50
    console.log(`target (issue 17): sequential mount throughput within 25 % of dfs fs put/get (write ${fmt(ratio.write)}, read ${fmt(ratio.read)}; ` +
      `of the in-process client: write ${fmt(ratioClient.write)}, read ${fmt(ratioClient.read)}), 4 KiB create p50 < ${CREATE_P50_MS_MAX} ms (${fmt(median(lat.mountCreate))} ms): ${all ? 'met' : 'not met'}`)
    console.log(`load average ${loadavg().map((x) => x.toFixed(2)).join(' ')} at the end (other processes on this machine skew every figure)`)
  }
} catch (err) {
  if (mountStderr !== '') console.error(`dfs mount's stderr (last part):\n${mountStderr}`)
  throw err
} finally {
  await stopMount()
  await bench.shutdown()
}
