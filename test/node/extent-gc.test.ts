import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { randomBytes, randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { extentChecksum } from '@dfs/api'
import { LevelExtentStore } from '@dfs/level-store'
import { LocalMetadataService } from '@dfs/raft-metadata'
import { ExtentGc } from '../../src/node/extent-gc.js'

/**
 * The periodic orphan sweep of a running node, on a real LevelDB store and real (local) metadata:
 * a copy is freed only once two sweeps at least the age apart found it unreferenced here.
 */
const ME = '12D3KooWRyh2zNmr7R2ixgMm9AXDBYUYPzfntKCELAq8HDtpAVMX'
const OTHER = '12D3KooWNodeOther'
const logger: any = Object.assign(() => {}, { error: () => {}, trace: () => {}, enabled: false })

test('copies unreferenced for the age are freed; referenced, younger, pinned and moving-here ones stay', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dfs-gc-'))
  const store = new LevelExtentStore({ dir: join(dir, 'extents'), logger })
  const metadata = new LocalMetadataService({ dir: join(dir, 'metadata'), nodeId: ME, logger })
  await store.open()
  await metadata.start()
  try {
    const put = async (): Promise<{ id: string, size: number, checksum: string }> => {
      const id = randomUUID()
      const bytes = randomBytes(1000)
      await store.put(id, bytes)
      return { id, size: bytes.byteLength, checksum: extentChecksum(bytes) }
    }
    const mine = await put() // a file's extent with a copy here
    const elsewhere = await put() // metadata places it on another node only: a leftover
    const _orphan = await put() // nothing references it: a put that never committed
    const pinned = await put() // unreferenced, but a put on this node is still writing it
    const moving = await put() // a recorded move brings it here
    await metadata.propose({ type: 'PutFile', path: '/f', size: 1000, mtimeMs: 1, extents: [{ ...mine, replicas: [ME] }] })
    await metadata.propose({ type: 'CreateExtent', extent: { ...elsewhere, replicas: [OTHER] } })
    await metadata.propose({ type: 'CreateExtent', extent: { ...moving, replicas: [OTHER, 'n3'] } })
    await metadata.propose({ type: 'StartMove', id: moving.id, from: 'n3', to: ME })
    const gc = new ExtentGc(store, { nodeId: ME })
    const unpin = gc.pin([pinned.id])
    let now = 1_000_000
    const clock = (): number => now
    const AGE = 60_000

    assert.is(await gc.sweepAged(metadata, AGE, clock), 0, 'the first sweep only notes what it found unreferenced')
    now += AGE - 1
    assert.is(await gc.sweepAged(metadata, AGE, clock), 0, 'not old enough yet')
    // a copy written now (another node's put in progress) is first noted by the next sweep
    const late = await put()
    now += 1
    assert.is(await gc.sweepAged(metadata, AGE, clock), 2, 'the leftover and the orphan go')
    const left = new Set<string>()
    for await (const info of store.list()) left.add(info.id)
    assert.equal([...left].sort(), [mine.id, pinned.id, moving.id, late.id].sort())
    // that copy's file commits before the copy has aged: it is not freed
    now += AGE
    await metadata.propose({ type: 'CreateExtent', extent: { ...late, replicas: [ME] } })
    assert.is(await gc.sweepAged(metadata, AGE, clock), 0)
    unpin()
    now += 1
    assert.is(await gc.sweepAged(metadata, AGE, clock), 0, 'a copy unpinned just now is noted, not freed')
    now += AGE
    assert.is(await gc.sweepAged(metadata, AGE, clock), 1, 'and freed once it has aged unreferenced')
    assert.is(await store.has(pinned.id), false)
    assert.is(await store.has(mine.id), true)
    assert.is(await store.has(late.id), true)
  } finally {
    await metadata.stop()
    await store.close()
    await rm(dir, { recursive: true, force: true })
  }
})

test.run()
