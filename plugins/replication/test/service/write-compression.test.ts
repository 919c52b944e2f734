import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { randomBytes } from 'node:crypto'
import { CLUSTER_CONFIG_DEFAULTS, InvalidArgumentError, NodeUnreachableError, decodeExtent, encodeExtent, extentChecksum } from '@dfs/api'
import type {
  ClusterConfig, ClusterNode, ExtentEncoding, ExtentIdentity, ExtentPeers, MetadataService, MetadataView, PeerIdString
} from '@dfs/api'
import { DefaultPlacement } from '../../src/policies/default-placement.js'
import { DefaultRebalance } from '../../src/policies/default-rebalance.js'
import { DefaultReplication } from '../../src/service/replication-service.js'
import { decodesTo } from '@dfs/api'
import { logLikeText } from '../../../../test/support/log-text.js'

/** The write path's compression: decided once per extent, sent to every replica in that one form. */

const noop = (): void => {}
const silent = Object.assign(noop, { error: noop, trace: noop, enabled: false })
const ID = '00000000-0000-4000-8000-000000000002'

function node (id: string): ClusterNode {
  return { id, region: 'r1', health: 'healthy', usedBytes: 0, capacityBytes: 1 << 30, fillLimit: 0.9, failedForMs: 0 }
}

/** Peers that keep what each put carried; `old` peers refuse a codec as a build before codecs does. */
class RecordingPeers implements ExtentPeers {
  readonly got = new Map<PeerIdString, { extent: ExtentIdentity & ExtentEncoding, bytes: Uint8Array }>()
  readonly old = new Set<PeerIdString>()

  async put (peer: PeerIdString, extent: ExtentIdentity & ExtentEncoding, bytes: Uint8Array): Promise<void> {
    if (this.old.has(peer) && 'codec' in extent) throw new InvalidArgumentError('an extent has an unknown key "codec"', { key: 'codec' })
    this.got.set(peer, { extent: { ...extent }, bytes })
  }

  async replicate (): Promise<void> { throw new NodeUnreachableError('not in this test') }
  async delete (): Promise<void> {}
  async read (): Promise<Uint8Array> { throw new NodeUnreachableError('not in this test') }
}

function service (peers: RecordingPeers, config: Partial<ClusterConfig> = {}): DefaultReplication {
  const nodes = ['n1', 'n2', 'n3'].map(node)
  const members = nodes.map((n) => ({ id: n.id, name: n.id, region: n.region, addrs: [] }))
  const view = { config: () => ({ ...CLUSTER_CONFIG_DEFAULTS, ...config }), members: () => members } as unknown as MetadataView
  const metadata = {
    staleRead: <T>(fn: (v: MetadataView) => T): T => fn(view),
    status: () => ({ leader: undefined, term: 0, commitIndex: 0, appliedIndex: 0 })
  } as unknown as MetadataService
  return new DefaultReplication({
    nodeId: 'n1',
    logger: silent,
    store: undefined as never,
    metadata,
    cluster: { nodes: () => nodes },
    peers,
    placement: () => new DefaultPlacement(),
    rebalance: () => new DefaultRebalance()
  })
}

test('a compressible extent goes to every replica encoded once with the default codec; its identity is the logical bytes', async () => {
  const peers = new RecordingPeers()
  const bytes = logLikeText(1024 * 1024, 31)
  const w = await service(peers).write(ID, bytes)
  assert.equal(w.extent.checksum, extentChecksum(bytes))
  assert.is(w.extent.size, bytes.byteLength)
  assert.is(peers.got.size, 3)
  const first = peers.got.get('n1')
  assert.ok(first !== undefined)
  assert.is(first.extent.codec, CLUSTER_CONFIG_DEFAULTS.compression)
  assert.is(first.extent.storedSize, first.bytes.byteLength)
  assert.ok(first.bytes.byteLength < 0.5 * bytes.byteLength)
  for (const { extent, bytes: sent } of peers.got.values()) {
    assert.ok(sent === first.bytes, 'encoded once, the same buffer to every replica')
    assert.equal(extent, { id: ID, size: bytes.byteLength, checksum: extentChecksum(bytes), codec: first.extent.codec, storedSize: sent.byteLength })
  }
  assert.is(extentChecksum(decodeExtent(first.extent, 'zstd', first.bytes)), extentChecksum(bytes))
})

test('random bytes, and any bytes with compression off, go raw', async () => {
  for (const [bytes, config] of [[randomBytes(1024 * 1024), {}], [logLikeText(1024 * 1024, 32), { compression: 'off' as const }]] as const) {
    const peers = new RecordingPeers()
    await service(peers, config).write(ID, bytes)
    for (const { extent, bytes: sent } of peers.got.values()) {
      assert.equal(extent, { id: ID, size: bytes.byteLength, checksum: extentChecksum(bytes) })
      assert.ok(sent === bytes)
    }
  }
})

test('lz4 when the cluster says so', async () => {
  const peers = new RecordingPeers()
  await service(peers, { compression: 'lz4' }).write(ID, logLikeText(256 * 1024, 33))
  for (const { extent } of peers.got.values()) assert.is(extent.codec, 'lz4')
})

test('an encoding the client sent in the setting\'s codec goes to the replicas as it came; in another codec, or with compression off, it does not', async () => {
  const bytes = logLikeText(1024 * 1024, 35)
  const given = { codec: 'zstd' as const, bytes: encodeExtent('zstd', bytes) }
  let peers = new RecordingPeers()
  const w = await service(peers).write(ID, bytes, { encoded: given })
  assert.equal(w.extent.checksum, extentChecksum(bytes), 'the identity is still the logical bytes')
  for (const { extent, bytes: sent } of peers.got.values()) {
    assert.ok(sent === given.bytes, 'the client\'s bytes themselves, not compressed again')
    assert.equal(extent, { id: ID, size: bytes.byteLength, checksum: extentChecksum(bytes), codec: 'zstd', storedSize: given.bytes.byteLength })
  }
  peers = new RecordingPeers()
  await service(peers, { compression: 'lz4' }).write(ID, bytes, { encoded: given })
  for (const { extent, bytes: sent } of peers.got.values()) {
    assert.is(extent.codec, 'lz4', 'the cluster\'s setting decides what is stored')
    assert.ok(sent !== given.bytes)
    assert.ok(decodesTo(ID, 'lz4', sent, bytes))
  }
  // with `encoded` the caller may reuse `bytes` once the write settles (encodedWritesReleaseBytes):
  // raw copies, also to a replica too old for codecs, are sent from a copy of them
  peers = new RecordingPeers()
  peers.old.add('n3')
  await service(peers, { compression: 'off' }).write(ID, bytes, { encoded: given })
  for (const { extent, bytes: sent } of peers.got.values()) {
    assert.equal(extent, { id: ID, size: bytes.byteLength, checksum: extentChecksum(bytes) })
    assert.ok(sent !== bytes && Buffer.from(sent).equals(bytes))
  }
  peers = new RecordingPeers()
  peers.old.add('n3')
  await service(peers).write(ID, bytes, { encoded: given })
  assert.ok(peers.got.get('n2')?.bytes === given.bytes)
  const old = peers.got.get('n3')
  assert.ok(old !== undefined && old.bytes !== bytes && Buffer.from(old.bytes).equals(bytes), 'the old replica gets a copy of the logical bytes')
  assert.is(service(peers).encodedWritesReleaseBytes, true)
})

test('a replica that refuses the codec (a build before codecs) gets the logical bytes; the write keeps all three copies', async () => {
  const peers = new RecordingPeers()
  peers.old.add('n3')
  const bytes = logLikeText(512 * 1024, 34)
  const w = await service(peers).write(ID, bytes)
  assert.equal([...w.extent.replicas].sort(), ['n1', 'n2', 'n3'])
  assert.is(peers.got.get('n2')?.extent.codec, 'zstd')
  const old = peers.got.get('n3')
  assert.equal(old?.extent, { id: ID, size: bytes.byteLength, checksum: extentChecksum(bytes) })
  assert.ok(old?.bytes === bytes)
})

test('the coordinator proves an encoding before copy holders store it unchecked: only one that decodes to exactly the bytes passes', () => {
  const bytes = logLikeText(300_000, 33)
  for (const codec of ['zstd', 'lz4'] as const) {
    const encoded = encodeExtent(codec, bytes)
    assert.ok(decodesTo(ID, codec, encoded, bytes), codec)
    const flipped = Uint8Array.from(bytes)
    flipped[1000] ^= 1
    assert.not.ok(decodesTo(ID, codec, encoded, flipped), `${codec}: other bytes of the same length`)
    assert.not.ok(decodesTo(ID, codec, encoded.subarray(0, encoded.byteLength - 10), bytes), `${codec}: a cut encoding`)
    assert.not.ok(decodesTo(ID, codec, encoded, bytes.subarray(1)), `${codec}: another length`)
  }
})

test.run()
