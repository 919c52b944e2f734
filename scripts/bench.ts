// npm run bench:node: single-node figures through the real parts (a `dfs node start` process, a libp2p
// client connection, LevelDB with fsync). Prints a table; asserts nothing.
//
//   npm run bench:node [-- --size-mib 256 --reps 3 --small 1000 --metadata raft|local]
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { DfsClient } from '../src/client/index.js'
import { getFile, putFile } from '../src/client/files.js'
import { DFS, waitFor } from '../test/e2e/harness.js'
import { createKeyFile } from '../src/net/keys.js'
import { fmt, numberOption, pct } from './bench-stats.js'

const args = process.argv.slice(2)
const opt = (name: string, def: number): number => numberOption(args, name, def)
const sizeMiB = opt('size-mib', 256)
const reps = opt('reps', 3)
const smallCount = opt('small', 1000)
const metadataIdx = args.indexOf('--metadata')
const metadata = metadataIdx >= 0 ? args[metadataIdx + 1] : 'raft'

const dir = await mkdtemp(join(tmpdir(), 'dfs-bench-'))
const env = { ...process.env, HOME: dir, DFS_IDENTITY: join(dir, 'admin.key'), DEBUG: '' }
await createKeyFile(env.DFS_IDENTITY) // the CLI never creates a key that DFS_IDENTITY names
const dataDir = join(dir, 'node')
const node = spawn(process.execPath, [DFS, 'node', 'start', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--metadata', metadata, '--json'], { env, stdio: ['ignore', 'pipe', 'inherit'] })
try {
  const info = await waitFor(async () => {
    const t = await readFile(join(dataDir, 'node.json'), 'utf8').catch(() => undefined)
    return t == null ? undefined : JSON.parse(t) as { addrs: string[] }
  }, 30_000, 'the node')
  const client = await DfsClient.open({ node: info.addrs[0], identityPath: env.DFS_IDENTITY, dataDir, timeoutMs: 120_000 })

  const file = join(dir, 'big.bin')
  await writeFile(file, randomBytes(sizeMiB * 1024 * 1024))
  const putRates: number[] = []
  const getRates: number[] = []
  for (let r = 0; r < reps; r++) {
    let t = performance.now()
    await putFile(client, file, `/bench/big-${r}.bin`)
    putRates.push(sizeMiB / ((performance.now() - t) / 1000))
    const sink = new Writable({ write (_chunk, _enc, cb) { cb() } })
    t = performance.now()
    await getFile(client, `/bench/big-${r}.bin`, sink)
    getRates.push(sizeMiB / ((performance.now() - t) / 1000))
  }

  const small = randomBytes(4096)
  const latencies: number[] = []
  for (let i = 0; i < smallCount; i++) {
    const t = performance.now()
    await client.rpc.upload('fs.put', { path: `/bench/small/${i}` }, (async function * () { yield small })())
    latencies.push(performance.now() - t)
  }
  await client.close()

  const rows = [
    ['metric', 'median', 'p99', 'target'],
    [`put ${sizeMiB} MiB (MiB/s)`, fmt(median(putRates)), fmt(pct(putRates, 0.01)), '>= 150'],
    [`get ${sizeMiB} MiB (MiB/s)`, fmt(median(getRates)), fmt(pct(getRates, 0.01)), ''],
    ['put 4 KiB latency (ms)', fmt(median(latencies)), fmt(pct(latencies, 0.99)), 'p50 <= 2']
  ]
  console.log(`\nsingle node (--metadata ${metadata}), fsync on, ${reps} reps of ${sizeMiB} MiB, ${smallCount} × 4 KiB puts over one connection`)
  console.log('(for throughput the p99 column is the worst rep)\n')
  for (const row of rows) console.log(row.map((c, i) => i === 0 ? c.padEnd(26) : c.padStart(10)).join(' '))
} finally {
  node.kill('SIGTERM')
  await new Promise((r) => node.on('close', r))
  await rm(dir, { recursive: true, force: true })
}

function median (xs: number[]): number { return pct(xs, 0.5) }
