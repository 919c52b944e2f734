// The S3 API beside the native path, in the same run, against a three-node cluster of real processes
// on this machine (RF 3, fsync on):
//
//   npm run bench:s3 -- [--size-mib 256] [--reps 3] [--small 500] [--json]
//
// 1. Throughput: a --size-mib object PUT and GET through @aws-sdk/client-s3 (a streamed body: the SDK
//    sends aws-chunked with a CRC32 trailer, which the gateway verifies, and the gateway computes the
//    MD5 ETag) and the same bytes through `fs.put` / `fs.get` of the native client (putFile/getFile),
//    alternating S3 and native in every rep so both see the same machine.
// 2. Latency: --small sequential 4 KiB PUTs and GETs each way, one connection, after 50 unmeasured.
// Both through node n1. Target (issue 16): S3 within 15 % of the native throughput and within 1 ms
// of its 4 KiB p50.
//
// The process tunes its heap as `dfs fs put/get` do (src/cli/heap.ts), since its native client stands
// in for them (see bench-replication.ts); the S3 client in the same process runs with it too.
import { createReadStream } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { tuneHeapForStreaming } from '../src/cli/heap.js'
import { getFile, putFile } from '../src/client/files.js'
import { waitFor } from '../test/e2e/harness.js'
import { benchNodes } from './bench-nodes.js'
import { ResultTable, fmt, numberOption, pct } from './bench-stats.js'

tuneHeapForStreaming()

const args = process.argv.slice(2)
const sizeMiB = numberOption(args, 'size-mib', 256)
const reps = Math.max(1, numberOption(args, 'reps', 3))
const smallCount = Math.max(1, numberOption(args, 'small', 500))
const json = args.includes('--json')
const MiB = 1024 * 1024
const SMALL_WARMUP = 50

const log = (line: string): void => { if (!json) console.log(line) }
const median = (xs: number[]): number => pct(xs, 0.5)

const bench = await benchNodes('dfs-bench-s3-', '', [])
const dir = bench.dir
try {
  log(`${(await import('node:os')).cpus().length} CPUs, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')} before start`)
  const s3Flag = ['--s3-listen', '127.0.0.1:0', '--heartbeat-ms', '1000', '--failure-timeout-ms', '3000']
  const n1 = await bench.start('n1', join(dir, 'n1'), s3Flag)
  const c = await bench.open(n1, 120_000)
  const { token } = await c.call('cluster.token.create', { ttlMs: 3600_000, uses: 2 })
  await Promise.all(['n2', 'n3'].map(async (name) => await bench.start(name, join(dir, name), [...s3Flag, '--peers', n1.addr, '--join-token', token])))
  await waitFor(async () => {
    const { nodes } = await c.call('cluster.nodes', {})
    return nodes.length === 3 && nodes.every((m) => m.health === 'healthy' && m.voter) ? true : undefined
  }, 60_000, 'three healthy voters')
  const info = JSON.parse(await readFile(join(n1.dataDir, 'node.json'), 'utf8')) as { s3: string }
  const key = await c.call('s3.key.create', {})
  const s3 = new S3Client({ endpoint: `http://${info.s3}`, region: 'us-east-1', forcePathStyle: true, credentials: key, maxAttempts: 1 })
  await waitFor(async () => await s3.send(new CreateBucketCommand({ Bucket: 'bench' })).then(() => true, () => undefined), 10_000, 'the key to work')
  log(`three nodes; S3 and native client through n1 (S3 on ${info.s3})`)

  const file = join(dir, 'big.bin')
  await writeFile(file, randomBytes(sizeMiB * MiB))
  const sink = (): Writable => new Writable({ write (_chunk, _enc, cb) { cb() } })
  const rates = { s3Put: [] as number[], s3Get: [] as number[], fsPut: [] as number[], fsGet: [] as number[] }
  const timed = async (fn: () => Promise<unknown>): Promise<number> => {
    const t = performance.now()
    await fn()
    return sizeMiB / ((performance.now() - t) / 1000)
  }
  for (let rep = 1; rep <= reps; rep++) {
    // the order alternates so neither path always runs on a warmer machine
    const order = rep % 2 === 1 ? ['s3', 'fs'] as const : ['fs', 's3'] as const
    for (const way of order) {
      if (way === 's3') {
        rates.s3Put.push(await timed(async () => await s3.send(new PutObjectCommand({ Bucket: 'bench', Key: `big-${rep}`, Body: createReadStream(file), ContentLength: sizeMiB * MiB }))))
        rates.s3Get.push(await timed(async () => {
          const r = await s3.send(new GetObjectCommand({ Bucket: 'bench', Key: `big-${rep}` }))
          for await (const _ of r.Body as AsyncIterable<Uint8Array>) { /* drained */ }
        }))
      } else {
        rates.fsPut.push(await timed(async () => await putFile(c, file, `/bench/native-${rep}`)))
        rates.fsGet.push(await timed(async () => await getFile(c, `/bench/native-${rep}`, sink())))
      }
    }
    log(`rep ${rep}: S3 put ${fmt(rates.s3Put[rep - 1])} get ${fmt(rates.s3Get[rep - 1])} MiB/s; native put ${fmt(rates.fsPut[rep - 1])} get ${fmt(rates.fsGet[rep - 1])} MiB/s`)
  }

  const small = randomBytes(4096)
  const lat = { s3Put: [] as number[], s3Get: [] as number[], fsPut: [] as number[], fsGet: [] as number[] }
  const once = async function * (): AsyncGenerator<Uint8Array> { yield small }
  for (let i = 0; i < SMALL_WARMUP + smallCount; i++) {
    const measured = i >= SMALL_WARMUP
    const k = `small/${i % 100}`
    let t = performance.now()
    await s3.send(new PutObjectCommand({ Bucket: 'bench', Key: k, Body: small }))
    if (measured) lat.s3Put.push(performance.now() - t)
    t = performance.now()
    const r = await s3.send(new GetObjectCommand({ Bucket: 'bench', Key: k }))
    await (r.Body as { transformToByteArray: () => Promise<Uint8Array> }).transformToByteArray()
    if (measured) lat.s3Get.push(performance.now() - t)
    t = performance.now()
    await c.rpc.upload('fs.put', { path: `/bench/n${k}`, size: small.byteLength }, once(), { timeoutMs: 10_000 })
    if (measured) lat.fsPut.push(performance.now() - t)
    t = performance.now()
    await getFile(c, `/bench/n${k}`, sink())
    if (measured) lat.fsGet.push(performance.now() - t)
  }
  s3.destroy()

  const table = new ResultTable(12)
  const within = (s3v: number, native: number): boolean => s3v >= native * 0.85
  table.row(`S3 PUT ${sizeMiB} MiB (MiB/s)`, median(rates.s3Put), `${fmt(Math.min(...rates.s3Put))} worst`, `>= ${fmt(median(rates.fsPut) * 0.85)}`, within(median(rates.s3Put), median(rates.fsPut)))
  table.row(`native put ${sizeMiB} MiB (MiB/s)`, median(rates.fsPut), `${fmt(Math.min(...rates.fsPut))} worst`, '')
  table.row(`S3 GET ${sizeMiB} MiB (MiB/s)`, median(rates.s3Get), `${fmt(Math.min(...rates.s3Get))} worst`, `>= ${fmt(median(rates.fsGet) * 0.85)}`, within(median(rates.s3Get), median(rates.fsGet)))
  table.row(`native get ${sizeMiB} MiB (MiB/s)`, median(rates.fsGet), `${fmt(Math.min(...rates.fsGet))} worst`, '')
  table.row('S3 PUT 4 KiB (ms)', median(lat.s3Put), pct(lat.s3Put, 0.99), `p50 <= ${fmt(median(lat.fsPut) + 1)}`, median(lat.s3Put) <= median(lat.fsPut) + 1)
  table.row('native put 4 KiB (ms)', median(lat.fsPut), pct(lat.fsPut, 0.99), '')
  table.row('S3 GET 4 KiB (ms)', median(lat.s3Get), pct(lat.s3Get, 0.99), `p50 <= ${fmt(median(lat.fsGet) + 1)}`, median(lat.s3Get) <= median(lat.fsGet) + 1)
  table.row('native get 4 KiB (ms)', median(lat.fsGet), pct(lat.fsGet, 0.99), '')
  if (json) {
    const sum = (xs: number[]): { median: number, p99: number, worst: number, n: number } => ({ median: median(xs), p99: pct(xs, 0.99), worst: Math.min(...xs), n: xs.length })
    const lats = (xs: number[]): { p50: number, p99: number, n: number } => ({ p50: median(xs), p99: pct(xs, 0.99), n: xs.length })
    console.log(JSON.stringify({
      sizeMiB,
      reps,
      throughputMiBs: { s3Put: sum(rates.s3Put), fsPut: sum(rates.fsPut), s3Get: sum(rates.s3Get), fsGet: sum(rates.fsGet) },
      latencyMs4KiB: { s3Put: lats(lat.s3Put), fsPut: lats(lat.fsPut), s3Get: lats(lat.s3Get), fsGet: lats(lat.fsGet) },
      loadAverageEnd: loadavg()
    }, null, 2))
  } else {
    console.log('')
    console.log(`RF 3, fsync on; 2 CPUs shared by three nodes and this client; ${reps} reps of ${sizeMiB} MiB, ${smallCount} sequential 4 KiB ops each way after ${SMALL_WARMUP} unmeasured`)
    console.log('(for throughput the p99 column is the worst rep)')
    table.print()
    console.log(`load average ${loadavg().map((x) => x.toFixed(2)).join(' ')} at the end (other processes on this machine skew every figure)`)
  }
} finally {
  await bench.shutdown()
}
