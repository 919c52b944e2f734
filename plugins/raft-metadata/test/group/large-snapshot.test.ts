import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { SNAPSHOT_DATA_BYTES_MAX } from '../../src/transport/index.js'
import { plain, waitFor } from '../transport/libp2p-network.js'
import { Cluster, enc } from './cluster.js'

interface Ctx { cluster: Cluster | undefined }
const test = suite<Ctx>('RaftGroup: a snapshot larger than one transport frame, over libp2p', { cluster: undefined })

test.after.each(async (ctx) => {
  await ctx.cluster?.destroy()
  ctx.cluster = undefined
})

test('a follower behind the compaction point catches up from a 40 MiB snapshot and keeps applying', plain(async (ctx) => {
  // 100 ms ticks: encoding and storing tens of MiB takes the loop away for a while, which 20 ms
  // ticks would turn into needless elections.
  const c = ctx.cluster = await Cluster.start(3, { tickMs: 100, snapshotEvery: 4, snapshotKeepEntries: 0 })
  const lead = await c.leader()
  const follower = (lead + 1) % 3
  await c.group(lead).propose(enc('first'))
  await waitFor(() => c.running().every((i) => c.members[i].sm.items.length === 1), 5000, 'the first item everywhere')
  await c.stop(follower)

  // 10 items of 4 MiB: the list machine's snapshot (JSON of the items) is just over 40 MiB.
  const items = ['first']
  for (let k = 0; k < 10; k++) {
    const item = `${k}:`.padEnd(4 * 1024 * 1024, String.fromCharCode(97 + k))
    await c.group(lead).propose(enc(item))
    items.push(item)
  }
  const writers = c.running()
  await waitFor(() => writers.every((i) => c.members[i].sm.items.length === items.length && c.group(i).stats.snapshotsCreated >= 2), 30_000, 'snapshots on the running nodes')
  const snapBytes = c.members[lead].sm.snapshot().byteLength
  assert.ok(snapBytes > 40 * 1024 * 1024 && snapBytes > SNAPSHOT_DATA_BYTES_MAX, `the snapshot is ${snapBytes} bytes`)

  await c.restart(follower)
  await waitFor(() => c.members[follower].sm.items.length === items.length, 60_000, 'the follower to catch up')
  assert.ok(c.group(follower).stats.snapshotsRestored >= 1, 'the follower restored a snapshot')
  const sent = c.running().reduce((n, i) => n + (c.members[i].transport?.stats.snapshotChunksSent ?? 0), 0)
  assert.ok(sent >= 10, `snapshot chunks sent: ${sent}`)
  assert.ok(c.members[follower].transport?.stats.snapshotsReassembled === 1)
  // The follower's state is the leader's.
  assert.ok(c.members[follower].sm.items.every((it, j) => it === items[j]))
  assert.equal(c.members[follower].sm.snapshot(), c.members[lead].sm.snapshot())

  // And it applies what comes after the snapshot.
  await c.group(follower).propose(enc('after'))
  items.push('after')
  await waitFor(() => c.running().every((i) => c.members[i].sm.items.length === items.length), 5000, 'the next item everywhere')
  assert.is(c.members[follower].sm.items[items.length - 1], 'after')
}))

test.run()
