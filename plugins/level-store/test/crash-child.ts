/**
 * Child of crash.test.ts: opens the store in argv[2] and puts extents (large ones, in files, mixed
 * with small ones) with up to 4 in flight, forever; prints `<id> <size> <seed>` once each put resolved
 * (and, with DFS_CRASH_DELETES=1, `deleting <id>` before a delete and `del <id>` once it resolved;
 * DFS_CRASH_DEFERRED=1 puts small extents with `durable: false` and syncs: see deferredWorker).
 */
import { randomUUID } from 'node:crypto'
import type { Logger } from '@dfs/api'
import { patternBytes } from '@dfs/api/testing'
import { LevelExtentStore } from '../src/index.js'

// only as crash.test.ts's child (a test runner that loads every file would otherwise run it)
if (process.env.DFS_CRASH_CHILD !== '1' || process.argv[2] === undefined) process.exit(0)
/** A safety valve: the parent kills it long before. */
const PUTS_MAX = 2000
const logger: Logger = Object.assign(() => {}, { error: () => {}, trace: () => {}, enabled: false })
const store = new LevelExtentStore({ dir: process.argv[2], logger })
await store.open()
process.stdout.write('open\n')
let seed = 0
async function worker (): Promise<void> {
  while (seed < PUTS_MAX) {
    const s = ++seed
    const size = s % 5 === 0 ? 3000 + s : 1024 * 1024 + ((s * 7919) % (3 * 1024 * 1024))
    const id = randomUUID()
    await store.put(id, patternBytes(size, s))
    process.stdout.write(`${id} ${size} ${s}\n`)
    // DFS_CRASH_DELETES=1: every other small extent is deleted once acknowledged (deletes of small
    // extents are not fsync'd: a kill may undo them, never tear them). `deleting` comes first: a
    // kill between the delete and its `del` line may find it done or not
    if (process.env.DFS_CRASH_DELETES === '1' && size < 1024 * 1024 && s % 2 === 0) {
      process.stdout.write(`deleting ${id}\n`)
      await store.delete(id)
      process.stdout.write(`del ${id}\n`)
    }
  }
}
/**
 * DFS_CRASH_DEFERRED=1: small `durable: false` puts (held in memory, written in batches), with a
 * `sync` every few milliseconds that prints `synced <n>` once it resolved: the first n puts acknowledged
 * before it began are then durable. Every third one is deleted once acknowledged, as above.
 */
async function deferredWorker (): Promise<void> {
  while (seed < PUTS_MAX * 4) {
    const s = ++seed
    const size = 1000 + ((s * 7919) % 7000)
    const id = randomUUID()
    await store.put(id, patternBytes(size, s), { durable: false })
    process.stdout.write(`${id} ${size} ${s}\n`)
    acks++
    // a held put resolves without I/O: yield, as a node between the commits it applies, or the
    // batches' and syncs' callbacks would wait for the whole loop
    await new Promise((resolve) => setImmediate(resolve))
    if (s % 3 === 0) {
      process.stdout.write(`deleting ${id}\n`)
      await store.delete(id)
      process.stdout.write(`del ${id}\n`)
    }
  }
}
let acks = 0
async function syncer (): Promise<void> {
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 5 + Math.floor(Math.random() * 30)))
    const covered = acks
    await store.sync()
    process.stdout.write(`synced ${covered}\n`)
  }
}
if (process.env.DFS_CRASH_DEFERRED === '1') {
  void syncer()
  await Promise.all([deferredWorker(), deferredWorker(), deferredWorker(), deferredWorker()])
} else {
  await Promise.all([worker(), worker(), worker(), worker()])
}
process.stdout.write('done\n')
