/**
 * Benchmark of the LevelDB extent store (not a test: it asserts nothing and prints a table).
 *
 *   node --import ./bin/polyfill.js --import tsx --conditions=dfs-source plugins/level-store/scripts/bench-store.ts [dir]
 *
 * Every put is fsync'd (that is the store's contract). The store lives in a temporary directory
 * under os.tmpdir() unless `dir` is given (to measure another disk); it is removed afterwards.
 *
 * It starts with ROUNDS successive rounds of 64 × 4 MiB sequential puts (a 256 MiB file each) into
 * the same store and prints each round's MiB/s: a single round hides compaction debt that later
 * rounds pay (random bytes keys used to fall from ~260 to ~60 MiB/s by round 3).
 *
 * DFS_BENCH_MAX_FILE_MIB=n sets the store's maxFileBytes (LevelDB maxFileSize) to n MiB.
 */
import { randomFillSync, randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Logger } from '@dfs/api'
import { LevelExtentStore } from '../src/index.js'

const MiB = 1024 * 1024
const LARGE_COUNT = 64
const LARGE_SIZE = 4 * MiB
const CONCURRENCY = 8
const SMALL_COUNT = 2000
const SMALL_SIZE = 4 * 1024
const ROUNDS = 3

const logger: Logger = Object.assign(() => {}, { error: (...args: unknown[]) => { process.stderr.write(args.join(' ') + '\n') }, trace: () => {}, enabled: false })

function percentile (sortedMs: number[], p: number): number {
  return sortedMs[Math.min(sortedMs.length - 1, Math.ceil((p / 100) * sortedMs.length) - 1)]
}

function randomExtents (count: number, size: number): Array<{ id: string, bytes: Uint8Array }> {
  return Array.from({ length: count }, () => ({ id: randomUUID(), bytes: randomFillSync(new Uint8Array(size)) }))
}

async function timed (fn: () => Promise<void>): Promise<number> {
  const start = process.hrtime.bigint()
  await fn()
  return Number(process.hrtime.bigint() - start) / 1e6
}

const maxFileMiB = process.env.DFS_BENCH_MAX_FILE_MIB
const maxFile = maxFileMiB === undefined ? {} : { maxFileBytes: Number(maxFileMiB) * MiB }

const base = await mkdtemp(join(process.argv[2] ?? tmpdir(), 'dfs-bench-store-'))
const rows: Array<[string, string]> = []
try {
  const store = new LevelExtentStore({ dir: join(base, 'extents'), logger, ...maxFile })
  await store.open()

  // ROUNDS × (64 × 4 MiB, one at a time) into the same store: each put is a sha256 + one fsync'd
  // batch; later rounds show whether compaction of earlier rounds' bytes slows the writes down
  const totalMiB = (LARGE_COUNT * LARGE_SIZE) / MiB
  let large: Array<{ id: string, bytes: Uint8Array }> = []
  let ms = 0
  for (let round = 1; round <= ROUNDS; round++) {
    large = randomExtents(LARGE_COUNT, LARGE_SIZE)
    const extents = large
    ms = await timed(async () => { for (const e of extents) await store.put(e.id, e.bytes) })
    rows.push([`put ${LARGE_COUNT} × 4 MiB, sequential, fsync, round ${round}/${ROUNDS}`, `${(totalMiB / (ms / 1000)).toFixed(0)} MiB/s (${(ms / LARGE_COUNT).toFixed(1)} ms/put)`])
  }

  // the same volume with 8 puts in flight (LevelDB groups concurrent writes into one log sync)
  const large2 = randomExtents(LARGE_COUNT, LARGE_SIZE)
  ms = await timed(async () => {
    let next = 0
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (next < large2.length) {
        const e = large2[next++]
        await store.put(e.id, e.bytes)
      }
    }))
  })
  rows.push([`put ${LARGE_COUNT} × 4 MiB, ${CONCURRENCY} in flight, fsync`, `${(totalMiB / (ms / 1000)).toFixed(0)} MiB/s`])

  // reads verify the checksum every time
  ms = await timed(async () => { for (const e of large) await store.get(e.id) })
  rows.push([`get ${LARGE_COUNT} × 4 MiB, sequential, verified`, `${(totalMiB / (ms / 1000)).toFixed(0)} MiB/s (${(ms / LARGE_COUNT).toFixed(1)} ms/get)`])
  ms = await timed(async () => {
    let next = 0
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (next < large2.length) await store.get(large2[next++].id)
    }))
  })
  rows.push([`get ${LARGE_COUNT} × 4 MiB, ${CONCURRENCY} in flight, verified`, `${(totalMiB / (ms / 1000)).toFixed(0)} MiB/s`])

  // latency of small puts, one at a time
  const small = randomExtents(SMALL_COUNT, SMALL_SIZE)
  const latencies: number[] = []
  for (const e of small) latencies.push(await timed(async () => { await store.put(e.id, e.bytes) }))
  latencies.sort((a, b) => a - b)
  const total = latencies.reduce((a, b) => a + b, 0)
  rows.push([`put ${SMALL_COUNT} × 4 KiB, sequential, fsync`, `${(SMALL_COUNT / (total / 1000)).toFixed(0)} puts/s`])
  rows.push(['  latency p50 / p99 / max', `${percentile(latencies, 50).toFixed(2)} / ${percentile(latencies, 99).toFixed(2)} / ${latencies[latencies.length - 1].toFixed(2)} ms`])

  const getLatencies: number[] = []
  for (const e of small) getLatencies.push(await timed(async () => { await store.get(e.id) }))
  getLatencies.sort((a, b) => a - b)
  rows.push([`get ${SMALL_COUNT} × 4 KiB, sequential, verified`, `p50 ${percentile(getLatencies, 50).toFixed(3)} / p99 ${percentile(getLatencies, 99).toFixed(3)} ms`])

  // reopening rebuilds the usage totals by scanning the headers
  const usage = await store.usage()
  await store.close()
  const reopened = new LevelExtentStore({ dir: join(base, 'extents'), logger, ...maxFile })
  ms = await timed(async () => { await reopened.open() })
  rows.push([`open (usage scan of ${usage.extents} headers)`, `${ms.toFixed(1)} ms`])
  await reopened.close()
} finally {
  await rm(base, { recursive: true, force: true })
}

const width = Math.max(...rows.map(([k]) => k.length))
process.stdout.write(`LevelExtentStore benchmark (${tmpdir()}, node ${process.version}${maxFileMiB === undefined ? '' : `, maxFileSize ${maxFileMiB} MiB`})\n\n`)
process.stdout.write(`${'what'.padEnd(width)}  figure\n${'-'.repeat(width)}  ${'-'.repeat(30)}\n`)
for (const [k, v] of rows) process.stdout.write(`${k.padEnd(width)}  ${v}\n`)
