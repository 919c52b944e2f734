import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { PrivateKey } from '@libp2p/interface'
import { RaftMetadataService } from '../../src/replicated/index.js'
import type { RaftMetadataServiceInit } from '../../src/replicated/index.js'
import { extent, member, putFile } from '../state-machine/fixtures.js'
import { groupOfShard, shardOfPath } from '../../src/shards/index.js'
import { newKey, plain, startHost, stopQuietly, testLogger, waitFor } from '../transport/libp2p-network.js'
import type { TestHost } from '../transport/libp2p-network.js'

interface Node { key: PrivateKey, port: number, host?: TestHost, service?: RaftMetadataService }
interface Ctx { dir: string, nodes: Node[] }

const test = suite<Ctx>('RaftMetadataService: 3 nodes over libp2p', { dir: '', nodes: [] })

test.before.each(async (ctx) => {
  ctx.dir = await mkdtemp(join(tmpdir(), 'dfs-raft-meta-'))
  ctx.nodes = []
})

test.after.each(async (ctx) => {
  for (const n of ctx.nodes) {
    await n.service?.stop().catch(() => {})
    await stopQuietly(n.host?.node)
  }
  await rm(ctx.dir, { recursive: true, force: true })
})

async function cluster (ctx: Ctx, extraInit: Partial<RaftMetadataServiceInit> | ((i: number) => Partial<RaftMetadataServiceInit>) = {}): Promise<RaftMetadataService[]> {
  const extraOf = (i: number): Partial<RaftMetadataServiceInit> => typeof extraInit === 'function' ? extraInit(i) : extraInit
  for (let i = 0; i < 3; i++) ctx.nodes.push({ key: await newKey(), port: 0 })
  // Hosts first (every node must know every PeerId and address), then the services.
  for (const n of ctx.nodes) { n.host = await startHost(n.key); n.port = n.host.port }
  const peers = ctx.nodes.map((m) => ({ id: m.host?.id ?? '', addrs: m.host?.addrs ?? [] }))
  const out: RaftMetadataService[] = []
  for (const [i, n] of ctx.nodes.entries()) {
    const host = n.host as TestHost
    n.service = new RaftMetadataService({
      dir: join(ctx.dir, `node-${i}`), nodeId: host.id, logger: testLogger(`[m${i}]`), network: host.network, peers, tickMs: 20, ...extraOf(i)
    })
    out.push(n.service)
  }
  await Promise.all(out.map(async (s) => { await s.start() }))
  return out
}

/** Waits until all services agree on one leader; returns its index. */
async function leaderOf (ctx: Ctx, services: RaftMetadataService[]): Promise<number> {
  let lead = -1
  await waitFor(() => {
    const leaders = new Set(services.map((s) => s.status().leader))
    const [l] = [...leaders]
    lead = ctx.nodes.findIndex((n) => n.host?.id === l)
    return leaders.size === 1 && lead >= 0
  }, 5000, 'a leader')
  return lead
}

test('a file put on a follower is read (linearizably) on every node, with typed errors', plain(async (ctx) => {
  const services = await cluster(ctx)
  const lead = await leaderOf(ctx, services)
  const follower = services[(lead + 1) % 3]
  await follower.propose({ type: 'InitCluster', clusterId: 'c1', createdAtMs: 1, admin: 'admin-peer', member: member('n1') })
  const r = await follower.propose(putFile('/docs/a.bin', [extent(1), extent(2)]))
  assert.is(r.ok, true)
  assert.is(r.file?.version, 1)
  for (const s of services) {
    const f = await s.read((v) => v.getFile('/docs/a.bin'))
    assert.is(f?.extents.length, 2)
    assert.is(await s.read((v) => v.cluster()?.clusterId), 'c1')
  }
  // A rejected operation is the state machine's typed error, the same on every node.
  try {
    await services[lead].propose({ type: 'InitCluster', clusterId: 'c2', createdAtMs: 2, admin: 'x', member: member('n2') })
    assert.unreachable('a second InitCluster must fail')
  } catch (err) {
    assert.is((err as Error).name, 'AlreadyExists')
  }
  const st = follower.status()
  // status() is the system group's: InitCluster and the rejected second one (plus leader no-ops)
  assert.ok(st.leader !== undefined && st.appliedIndex >= 2 && st.commitIndex >= st.appliedIndex)
}))

test('state survives a restart of every node (log + snapshot replay)', plain(async (ctx) => {
  const services = await cluster(ctx, { snapshotEvery: 10, snapshotKeepEntries: 2 })
  await leaderOf(ctx, services)
  await services[0].propose({ type: 'InitCluster', clusterId: 'c1', createdAtMs: 1, admin: 'admin-peer', member: member('n1') })
  for (let k = 0; k < 25; k++) await services[k % 3].propose(putFile(`/f/${k}`, [extent(100 + k)]))
  for (const n of ctx.nodes) {
    await n.service?.stop()
    await n.host?.node.stop()
    n.service = undefined
    n.host = undefined
  }
  // Restart all three on the same ports, data dirs and keys.
  for (let i = 0; i < 3; i++) {
    const n = ctx.nodes[i]
    n.host = await startHost(n.key, n.port)
  }
  const peers = ctx.nodes.map((m) => ({ id: m.host?.id ?? '', addrs: m.host?.addrs ?? [] }))
  const again: RaftMetadataService[] = []
  for (const [i, n] of ctx.nodes.entries()) {
    const host = n.host as TestHost
    n.service = new RaftMetadataService({ dir: join(ctx.dir, `node-${i}`), nodeId: host.id, logger: testLogger(`[m${i}]`), network: host.network, peers, tickMs: 20 })
    again.push(n.service)
  }
  await Promise.all(again.map(async (s) => { await s.start() }))
  await leaderOf(ctx, again)
  for (const s of again) {
    const names = await s.read((v) => v.list('/f').map((e) => e.name))
    assert.is(names.length, 25)
  }
  await again[2].propose(putFile('/f/new', [extent(999)]))
  assert.ok((await again[0].read((v) => v.getFile('/f/new'))) !== undefined)
}))

test('a PutFile carrying its bytes hands them to onInlineExtents on every member, again after a restart, again after a failure', plain(async (ctx) => {
  const got: Array<Array<{ id: string, bytes: string }>> = [[], [], []]
  let failFirst = true
  const services = await cluster(ctx, (i) => ({
    snapshotEvery: 4,
    snapshotKeepEntries: 1,
    onInlineExtents: async (extents) => {
      for (const x of extents) got[i].push({ id: x.extent.id, bytes: Buffer.from(x.bytes).toString() })
      if (i === 0 && failFirst) { failFirst = false; throw new Error('disk full') }
    }
  }))
  const lead = await leaderOf(ctx, services)
  await services[lead].propose({ type: 'InitCluster', clusterId: 'c1', createdAtMs: 1, admin: 'admin-peer', member: member('n1') })
  const ids = ctx.nodes.map((n) => n.host?.id ?? '').sort()
  for (const s of services) assert.equal([...s.inlineVoters('/small/a')].sort(), ids, 'the voters of the data group of /small')
  const op = { ...putFile('/small/a', [extent(1, 5)]), inline: [Buffer.from('hello')] }
  const r = await services[(lead + 1) % 3].propose(op)
  assert.is(r.ok, true)
  await waitFor(() => got.every((g) => g.length >= 1), 3000, 'every member stored the inline extent')
  for (const g of got) assert.equal(g[0], { id: extent(1).id, bytes: 'hello' })
  // node 0's first store failed: before its group snapshots, it is offered the extent again
  for (let k = 0; k < 12; k++) await services[lead].propose(putFile('/small/a', [extent(10 + k, 5)]))
  await waitFor(() => got[0].filter((x) => x.id === extent(1).id).length >= 2, 5000, 'the failed extent offered again')
  // the bytes never enter the state
  const stored = await services[0].read((v) => v.getExtent(extent(21).id))
  assert.equal(stored, extent(21, 5))
}))

test('before a snapshot, onInlineSettle makes the stored copies durable; a rejection postpones the snapshot', plain(async (ctx) => {
  const events: string[][] = [[], [], []]
  let failFirst = true
  const services = await cluster(ctx, (i) => ({
    snapshotEvery: 4,
    snapshotKeepEntries: 1,
    onInlineExtents: async (extents) => { for (const x of extents) events[i].push(`store ${x.extent.id}`) },
    onInlineSettle: async () => {
      events[i].push('settle')
      if (i === 0 && failFirst) { failFirst = false; throw new Error('fsync failed') }
    }
  }))
  const lead = await leaderOf(ctx, services)
  await services[lead].propose({ type: 'InitCluster', clusterId: 'c1', createdAtMs: 1, admin: 'admin-peer', member: member('n1') })
  await services[lead].propose({ ...putFile('/small/s', [extent(3, 5)]), inline: [Buffer.from('hello')] })
  const stored = `store ${extent(3).id}`
  for (let k = 0; k < 12; k++) await services[lead].propose(putFile('/small/s', [extent(40 + k, 5)]))
  // the group of /small snapshots every 4 entries: each member settled after storing the copy
  await waitFor(() => events.every((e) => e.includes('settle')), 5000, 'every member settled')
  for (const e of events) assert.ok(e.indexOf(stored) >= 0 && e.indexOf(stored) < e.indexOf('settle'), `stored, then settled: ${e.join(', ')}`)
  // node 0's first settle failed: no snapshot then, and a later attempt settles again
  await waitFor(() => events[0].filter((x) => x === 'settle').length >= 2, 5000, 'node 0 settles again after the failure')
}))

test('a restarted node applies its log again and hands inline bytes over again; a service without onInlineExtents names no voters', plain(async (ctx) => {
  const got: string[][] = [[], [], []]
  const services = await cluster(ctx, (i) => ({ onInlineExtents: async (extents) => { got[i].push(...extents.map((x) => x.extent.id)) } }))
  const lead = await leaderOf(ctx, services)
  await services[lead].propose({ type: 'InitCluster', clusterId: 'c1', createdAtMs: 1, admin: 'admin-peer', member: member('n1') })
  await services[lead].propose({ ...putFile('/small/b', [extent(2, 3)]), inline: [Buffer.from('abc')] })
  await waitFor(() => got[2].length >= 1, 3000, 'node 2 stored it')
  const n = ctx.nodes[2]
  await n.service?.stop()
  got[2] = []
  // node 2 again on its data dir and host, with `extra`
  const restart = async (extra: Partial<RaftMetadataServiceInit>): Promise<RaftMetadataService> => {
    n.service = new RaftMetadataService({
      dir: join(ctx.dir, 'node-2'), nodeId: n.host?.id ?? '', logger: testLogger('[m2]'), network: (n.host as TestHost).network,
      peers: ctx.nodes.map((m) => ({ id: m.host?.id ?? '', addrs: m.host?.addrs ?? [] })), tickMs: 20, ...extra
    })
    await n.service.start()
    return n.service
  }
  const bare = await restart({})
  // restarted without onInlineExtents: it may not be sent bytes it would drop
  assert.equal(bare.inlineVoters('/small/b'), [])
  await bare.stop()
  await restart({ onInlineExtents: async (extents) => { got[2].push(...extents.map((x) => x.extent.id)) } })
  await waitFor(() => got[2].includes(extent(2).id), 5000, 'the replayed PutFile handed over again')
}))

test('a node that catches up by snapshot is handed the small extents of the restored state before it acknowledges', plain(async (ctx) => {
  const restored: Array<Array<{ id: string, replicas: string[] }>> = [[], [], []]
  let hold = true
  const held: Array<() => void> = []
  const services = await cluster(ctx, (i) => ({
    snapshotEvery: 3,
    snapshotKeepEntries: 0,
    onInlineExtents: async () => {},
    onSnapshotRestored: async (extents) => {
      restored[i].push(...extents.map((x) => ({ id: x.id, replicas: x.replicas })))
      if (hold) await new Promise<void>((resolve) => { held.push(resolve) })
    }
  }))
  const lead = await leaderOf(ctx, services)
  await services[lead].propose({ type: 'InitCluster', clusterId: 'c1', createdAtMs: 1, admin: 'admin-peer', member: member('n1') })
  const down = (lead + 1) % 3
  const n = ctx.nodes[down]
  await n.service?.stop()
  // small files while it is down, in one data group, until that group snapshots and compacts past them
  const dir = dirIn(1)
  for (let k = 0; k < 8; k++) await services[lead].propose({ ...putFile(`${dir}/f${k}`, [extent(30 + k, 3)]), inline: [Buffer.from('abc')] })
  n.service = new RaftMetadataService({
    dir: join(ctx.dir, `node-${down}`), nodeId: n.host?.id ?? '', logger: testLogger(`[m${down}]`), network: (n.host as TestHost).network,
    peers: ctx.nodes.map((m) => ({ id: m.host?.id ?? '', addrs: m.host?.addrs ?? [] })), tickMs: 20, snapshotEvery: 3, snapshotKeepEntries: 0,
    onInlineExtents: async () => {},
    onSnapshotRestored: async (extents) => {
      restored[down].push(...extents.map((x) => ({ id: x.id, replicas: x.replicas })))
      if (hold) await new Promise<void>((resolve) => { held.push(resolve) })
    }
  })
  await n.service.start()
  // the first put is in the compacted range whatever snapshot the leader sends (the last may not be:
  // the entries after the leader's latest snapshot arrive by the log, and onInlineExtents stores them)
  await waitFor(() => restored[down].some((x) => x.id === extent(30).id), 30_000, 'the restored state handed over')
  hold = false
  for (const r of held.splice(0)) r()
  await waitFor(() => n.service?.staleRead((v) => v.getFile(`${dir}/f7`))?.extents[0] === extent(37).id, 30_000, 'caught up')
}))

/** A top-level directory whose shard data group `group` (of `groups`) owns. */
function dirIn (group: number, groups = 3): string {
  for (let i = 0; ; i++) if (groupOfShard(shardOfPath(`/top${i}`), groups) === group) return `/top${i}`
}

test('metadata is sharded over a system group and three data groups whose leaders spread over the nodes', plain(async (ctx) => {
  const services = await cluster(ctx, { promoteEveryMs: 50 })
  await leaderOf(ctx, services)
  await services[0].propose({ type: 'InitCluster', clusterId: 'c1', createdAtMs: 1, admin: 'admin-peer', member: member('n1') })
  assert.is(await services[1].read((v) => v.cluster()?.metadataGroups, { scope: { system: true } }), 3, 'the layout is in the cluster record')
  // one file in each data group, each written through a different node
  for (let g = 1; g <= 3; g++) await services[g % 3].propose(putFile(`${dirIn(g)}/f`, [extent(g)]))
  const ids = ctx.nodes.map((n) => n.host?.id ?? '')
  await waitFor(() => {
    const info = services[0].groups()
    const dataLeaders = info.groups.filter((x) => x.kind === 'data').map((x) => x.leader)
    return new Set(dataLeaders).size === 3 && dataLeaders.every((l) => l !== undefined && ids.includes(l))
  }, 30_000, 'each node to lead one data group')
  const { shardCount, groups } = services[2].groups()
  assert.is(shardCount, 256)
  assert.equal(groups.map((x) => [x.group, x.kind]), [[0, 'system'], [1, 'data'], [2, 'data'], [3, 'data']])
  assert.equal(groups.flatMap((x) => x.shards), Array.from({ length: 256 }, (_, i) => i), 'every shard in one data group')
  for (const x of groups) assert.equal(x.voters, [...ids].sort())
  for (const s of services) {
    // the top level merges every group's entries, sorted; below it one group answers
    const top = await s.read((v) => v.list('/').map((e) => e.path), { scope: { paths: ['/'] } })
    assert.equal(top, [dirIn(1), dirIn(2), dirIn(3)].sort())
    for (let g = 1; g <= 3; g++) {
      assert.is(await s.read((v) => v.getFile(`${dirIn(g)}/f`)?.size, { scope: { paths: [`${dirIn(g)}/f`] } }), 10)
      assert.equal(await s.read((v) => v.getExtent(extent(g).id)?.id, { scope: { extents: true } }), extent(g).id)
    }
    assert.is([...await s.read((v) => v.extentIds())].length, 3)
  }
  // an extent's later operations reach the group that holds it, wherever its id would hash
  const moved = await services[1].propose({ type: 'UpdateReplication', id: extent(2).id, replicas: ['n9'] })
  assert.equal(moved.extent?.replicas, ['n9'])
  // a misrouted operation would be refused by the group (never applied in the wrong place)
  const rm = await services[0].propose({ type: 'DeleteFile', path: `${dirIn(3)}/f` })
  assert.is(rm.freed?.length, 1)
  assert.is(await services[2].read((v) => v.getFile(`${dirIn(3)}/f`), { scope: { paths: [dirIn(3)] } }), undefined)
}))

test('a joining node learns the data groups from the system group and serves every shard', plain(async (ctx) => {
  const services = await cluster(ctx, { promoteEveryMs: 50 })
  await leaderOf(ctx, services)
  await services[0].propose({ type: 'InitCluster', clusterId: 'c1', createdAtMs: 1, admin: 'admin-peer', member: member('n1') })
  for (let g = 1; g <= 3; g++) await services[0].propose(putFile(`${dirIn(g)}/f`, [extent(g)]))
  const key = await newKey()
  const host = await startHost(key)
  const n: Node = { key, port: host.port, host }
  ctx.nodes.push(n)
  for (const s of services) await s.read((v) => v.cluster()) // warm
  for (const other of ctx.nodes.slice(0, 3)) await host.network.addAddresses(other.host?.id ?? '', other.host?.addrs ?? [])
  for (const other of ctx.nodes.slice(0, 3)) await other.host?.network.addAddresses(host.id, host.addrs)
  n.service = new RaftMetadataService({ dir: join(ctx.dir, 'joiner'), nodeId: host.id, logger: testLogger('[m3]'), network: host.network, peers: [], join: true, tickMs: 20 })
  await n.service.start()
  await services[1].membership.addLearner(host.id)
  const joiner = n.service
  await waitFor(() => joiner.groups().groups.length === 4, 10_000, 'the joiner to open the data groups')
  for (let g = 1; g <= 3; g++) {
    assert.is(await joiner.read((v) => v.getFile(`${dirIn(g)}/f`)?.size), 10)
  }
  for (const x of services[0].groups().groups) assert.ok(x.learners.includes(host.id) || x.voters.includes(host.id), `in group ${x.group}`)
  // it writes to every group too
  for (let g = 1; g <= 3; g++) await joiner.propose(putFile(`${dirIn(g)}/new`, [extent(10 + g)]))
  assert.is([...await services[2].read((v) => v.extentIds())].length, 6)
  // and leaves every group when removed
  await services[0].membership.remove(host.id)
  for (const x of services[0].groups().groups) assert.ok(!x.learners.includes(host.id) && !x.voters.includes(host.id), `out of group ${x.group}`)
}))

test('voters grow to five in every group as two nodes join, whichever node leads each group', plain(async (ctx) => {
  const services = await cluster(ctx, { promoteEveryMs: 50 })
  await leaderOf(ctx, services)
  await services[0].propose({ type: 'InitCluster', clusterId: 'c1', createdAtMs: 1, admin: 'admin-peer', member: member('n1') })
  for (let j = 0; j < 2; j++) {
    const key = await newKey()
    const host = await startHost(key)
    const n: Node = { key, port: host.port, host }
    ctx.nodes.push(n)
    for (const other of ctx.nodes) {
      if (other === n) continue
      await host.network.addAddresses(other.host?.id ?? '', other.host?.addrs ?? [])
      await other.host?.network.addAddresses(host.id, host.addrs)
    }
    n.service = new RaftMetadataService({ dir: join(ctx.dir, `joiner-${j}`), nodeId: host.id, logger: testLogger(`[j${j}]`), network: host.network, peers: [], join: true, tickMs: 20, promoteEveryMs: 50 })
    await n.service.start()
    await services[j].membership.addLearner(host.id)
    services.push(n.service)
  }
  await waitFor(() => services.every((s) => s.membership.members().voters.length === 5), 20_000, 'five voters in every group, seen by every node')
}))

async function rejectsNamed (p: Promise<unknown>, name: string): Promise<Error & { details?: Record<string, unknown> }> {
  try {
    await p
  } catch (err) {
    assert.is((err as Error).name, name, (err as Error).message)
    return err as Error
  }
  assert.unreachable(`expected ${name}`)
  throw new Error('unreachable')
}

test('a data dir keeps the number of data groups it was created with: another one asked for is refused', plain(async (ctx) => {
  const host = await startHost()
  const node: Node = { key: host.privateKey, port: host.port, host }
  ctx.nodes.push(node)
  const dir = join(ctx.dir, 'solo')
  const open = (extra: Partial<RaftMetadataServiceInit>): RaftMetadataService => {
    node.service = new RaftMetadataService({ dir, nodeId: host.id, logger: testLogger('[s]'), network: host.network, peers: [{ id: host.id, addrs: [] }], tickMs: 20, ...extra })
    return node.service
  }
  let s = open({ dataGroups: 3 })
  await s.start()
  await waitFor(() => s.status().leader === host.id, 3000, 'the single voter to lead')
  await s.propose({ type: 'InitCluster', clusterId: 'solo', createdAtMs: 1, admin: 'a', member: member('n1') })
  const path = `${dirIn(2)}/f`
  await s.propose(putFile(path, [extent(1)]))
  await s.stop()

  // the layout file says 3: asking for 2 is refused at start, saying both numbers
  const err = await rejectsNamed(open({ dataGroups: 2 }).start(), 'ConfigError')
  assert.equal([err.details?.dataGroups, err.details?.asked], [3, 2])
  // without the flag, or with the same number, the node starts on its three groups
  for (const extra of [{}, { dataGroups: 3 }]) {
    s = open(extra)
    await s.start()
    assert.is(s.groups().groups.length, 4)
    assert.is(await s.read((v) => v.getFile(path)?.size), 10)
    await s.stop()
  }

  // the layout file is lost (a node restarted before it wrote it): the cluster record says 3
  const layout = join(dir, 'layout.json')
  assert.equal(JSON.parse(await readFile(layout, 'utf8')), { dataGroups: 3 })
  await rm(layout)
  const again = await rejectsNamed(open({ dataGroups: 2 }).start(), 'ConfigError')
  assert.equal([again.details?.dataGroups, again.details?.asked], [3, 2])
  s = open({})
  await s.start()
  await waitFor(() => s.groups().groups.length === 4, 5000, 'the data groups of the cluster record')
  assert.is(await s.read((v) => v.getFile(path)?.size), 10)
}))

test('a node that learns only from its cluster that it was asked for another number of data groups stops serving', plain(async (ctx) => {
  const services = await cluster(ctx)
  await leaderOf(ctx, services)
  // node 2 is down while the cluster is initialised, and comes back without its layout file
  const n = ctx.nodes[2]
  await n.service?.stop()
  await rm(join(ctx.dir, 'node-2', 'layout.json'))
  await services[0].propose({ type: 'InitCluster', clusterId: 'c1', createdAtMs: 1, admin: 'admin-peer', member: member('n1') })
  const s = n.service = new RaftMetadataService({
    dir: join(ctx.dir, 'node-2'), nodeId: n.host?.id ?? '', logger: testLogger('[m2]'), network: (n.host as TestHost).network,
    peers: ctx.nodes.map((m) => ({ id: m.host?.id ?? '', addrs: m.host?.addrs ?? [] })), tickMs: 20, dataGroups: 2
  })
  await s.start()
  await waitFor(() => {
    try {
      s.staleRead(() => undefined)
      return false
    } catch (err) {
      return (err as Error).name === 'ConfigError'
    }
  }, 10_000, 'the service to fail')
  const err = await rejectsNamed(s.read((v) => v.cluster()), 'ConfigError')
  assert.equal([err.details?.dataGroups, err.details?.asked], [3, 2])
  assert.equal(s.groups().groups, [], 'it replicates no group any more')
  await s.stop()
  // the other two still serve
  await services[1].propose(putFile('/after', [extent(1)]))
}))

test('init is validated', plain(async (ctx) => {
  const host = await startHost()
  ctx.nodes.push({ key: host.privateKey, port: host.port, host })
  const base = { dir: join(ctx.dir, 'x'), nodeId: host.id, logger: testLogger('[v]'), network: host.network }
  assert.throws(() => new RaftMetadataService({ ...base, peers: [] }), (e: Error) => e.name === 'InvalidArgument')
  assert.throws(() => new RaftMetadataService({ ...base, peers: [{ id: 'other', addrs: [] }] }), (e: Error) => e.name === 'InvalidArgument')
  const s = new RaftMetadataService({ ...base, peers: [{ id: host.id, addrs: [] }], tickMs: 20 })
  try {
    await s.propose(putFile('/a', []))
    assert.unreachable('propose before start')
  } catch (err) {
    assert.is((err as Error).name, 'Unavailable')
  }
  // A single-voter group works too.
  ctx.nodes[0].service = s
  await s.start()
  await waitFor(() => s.status().leader === host.id, 3000, 'the single voter to lead')
  await s.propose({ type: 'InitCluster', clusterId: 'solo', createdAtMs: 1, admin: 'a', member: member('n1') })
  assert.is(await s.read((v) => v.cluster()?.clusterId), 'solo')
}))

test.run()
