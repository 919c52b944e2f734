import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import type { Connection, ConnectionGater, PrivateKey, Stream } from '@libp2p/interface'
import { createHost, DHT_PROTOCOL, type Host, type NodeHost } from '../../src/net/host.js'
import { Admission, composeGaters, OPEN_PROTOCOLS, type Standing } from '../../src/net/admission.js'
import { RPC_PROTOCOL } from '../../src/net/constants.js'
import { findMember } from '../../src/membership/discovery.js'
import { Cleanup, waitFor } from '../membership/helpers.js'

const test = suite('net/admission: members and known identities in, strangers restricted (real hosts on 127.0.0.1)')

const RAFT = '/dfs/raft/1.0.0'
const cleanup = new Cleanup()

test.after(async () => { await cleanup.run() })

/** A node host gated by `admission`, with echo handlers on the RPC and Raft protocol ids. */
async function gatedNode (admission: Admission, key: PrivateKey): Promise<NodeHost> {
  const host = await createHost({
    role: 'node',
    privateKey: key,
    listen: ['/ip4/127.0.0.1/tcp/0'],
    connectionGater: admission.gater(),
    streamGate: admission.streamGate(),
    dhtPeerFilter: (peer) => admission.mayJoinDht(peer)
  })
  cleanup.add(async () => { admission.stop(); await host.stop() })
  for (const protocol of [RPC_PROTOCOL, RAFT]) {
    await host.handle(protocol, async (stream) => {
      const lp = lpStream(stream)
      await lp.write(await lp.read())
      await stream.close()
    })
  }
  return host
}

async function nodeHost (key?: PrivateKey): Promise<NodeHost> {
  const host = await createHost({ role: 'node', privateKey: key ?? await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'] })
  cleanup.add(async () => { await host.stop() })
  return host
}

async function clientHost (): Promise<Host> {
  const host = await createHost({ privateKey: await generateKeyPair('Ed25519') })
  cleanup.add(async () => { await host.stop() })
  return host
}

/** Opens `protocol` on `target` and has it echo one message: the echo, or the error's name. */
async function echo (from: Host, target: Host, protocol: string): Promise<string> {
  try {
    const stream = await from.dialProtocol(target.getMultiaddrs()[0], protocol, { signal: AbortSignal.timeout(10_000) })
    const lp = lpStream(stream)
    await lp.write(new TextEncoder().encode('hello'), { signal: AbortSignal.timeout(10_000) })
    return new TextDecoder().decode((await lp.read({ signal: AbortSignal.timeout(10_000) })).subarray())
  } catch (err: any) {
    return err.name
  }
}

/** A standing source over plain sets, as metadata would answer. */
function sets (members: Set<string>, known: Set<string> = new Set()): (peer: string) => Standing {
  return (peer) => members.has(peer) ? 'member' : known.has(peer) ? 'known' : 'stranger'
}

test('a stranger may open RPC and ping; its Raft and kad streams are reset, a member\'s and a known identity\'s are served', async () => {
  const key = await generateKeyPair('Ed25519')
  // the stranger's connection must outlive the DHT lookups below (lifetimes have their own test)
  const admission = new Admission({ self: peerIdFromPrivateKey(key).toString(), strangerLifetimeMs: 60_000 })
  const node = await gatedNode(admission, key)
  const member = await nodeHost()
  const other = await nodeHost()
  const stranger = await nodeHost()
  const user = await clientHost()
  admission.attach(sets(new Set([member.peerId.toString(), other.peerId.toString()]), new Set([user.peerId.toString()])))

  assert.is(await echo(stranger, node, RPC_PROTOCOL), 'hello', 'the RPC protocol is open to strangers (cluster.join)')
  assert.ok(await user.services.ping.ping(node.getMultiaddrs()[0], { signal: AbortSignal.timeout(10_000) }) >= 0)
  assert.ok(await (await clientHost()).services.ping.ping(node.getMultiaddrs()[0], { signal: AbortSignal.timeout(10_000) }) >= 0, 'ping is open to strangers')
  // (the stranger's gossipsub and kad may have opened streams of their own: count from here)
  const refused = admission.stats.streamsRefused
  assert.is.not(await echo(stranger, node, RAFT), 'hello')
  assert.ok(admission.stats.streamsRefused > refused)
  const refusedRaft = admission.stats.streamsRefused
  assert.is(await echo(member, node, RAFT), 'hello')
  assert.is(await echo(user, node, RAFT), 'hello', 'a known identity is admitted normally')

  // kad through `node`: the member finds `other` through it, the stranger cannot
  await other.dial(node.getMultiaddrs()[0])
  await member.dial(node.getMultiaddrs()[0])
  const found = await findMember(member, other.peerId, { timeoutMs: 8000 })
  assert.ok(found.addrs.length > 0)
  assert.ok(admission.stats.streamsRefused >= refusedRaft)
  const refusedBefore = admission.stats.streamsRefused
  try {
    await findMember(stranger, other.peerId, { timeoutMs: 1500 })
    assert.unreachable('a stranger must not use the node\'s DHT')
  } catch (e: any) {
    assert.is(e.name, 'NotFound')
  }
  assert.ok(admission.stats.streamsRefused > refusedBefore, 'its kad streams were refused')
  const rawKad = await echo(stranger, node, DHT_PROTOCOL)
  assert.is.not(rawKad, 'hello')
})

test('the (limit+1)th stranger connection is denied; members are never counted; a closed one frees its slot', async () => {
  const key = await generateKeyPair('Ed25519')
  const admission = new Admission({ self: peerIdFromPrivateKey(key).toString(), strangersMax: 2 })
  const node = await gatedNode(admission, key)
  const member = await nodeHost()
  admission.attach(sets(new Set([member.peerId.toString()])))
  const strangers = [await clientHost(), await clientHost(), await clientHost()]
  assert.is(await echo(strangers[0], node, RPC_PROTOCOL), 'hello')
  assert.is(await echo(strangers[1], node, RPC_PROTOCOL), 'hello')
  assert.is(admission.strangerConnections(), 2)
  assert.is.not(await echo(strangers[2], node, RPC_PROTOCOL), 'hello', 'the third stranger is denied')
  assert.is(admission.stats.connectionsDenied, 1)
  assert.is(await echo(member, node, RAFT), 'hello', 'a member still gets in')
  assert.is(admission.strangerConnections(), 2)
  await strangers[0].hangUp(node.peerId)
  await waitFor('the closed stranger connection to be forgotten', () => admission.strangerConnections() === 1, 10_000)
  assert.is(await echo(strangers[2], node, RPC_PROTOCOL), 'hello', 'a slot is free again')
})

test('a restricted stream from a peer this node learns is a member moments later is admitted, not refused', async () => {
  const key = await generateKeyPair('Ed25519')
  const admission = new Admission({ self: peerIdFromPrivateKey(key).toString(), standingRecheckMs: 3000 })
  const node = await gatedNode(admission, key)
  const members = new Set<string>()
  admission.attach(sets(members))
  const joiner = await nodeHost()
  // the membership change reaches this node 500 ms after the new member's first Raft stream
  setTimeout(() => { members.add(joiner.peerId.toString()) }, 500)
  assert.is(await echo(joiner, node, RAFT), 'hello')
  assert.is(admission.stats.streamsRefused, 0)
})

test('a stranger\'s connection is closed after its lifetime unless it has become a member by then', async () => {
  const key = await generateKeyPair('Ed25519')
  const admission = new Admission({ self: peerIdFromPrivateKey(key).toString(), strangerLifetimeMs: 1500, standingRecheckMs: 0 })
  const node = await gatedNode(admission, key)
  const members = new Set<string>()
  admission.attach(sets(members))
  const stays = await nodeHost()
  const leaves = await clientHost()
  assert.is(await echo(stays, node, RPC_PROTOCOL), 'hello')
  assert.is(await echo(leaves, node, RPC_PROTOCOL), 'hello')
  assert.is(await echo(stays, node, RAFT) === 'hello', false, 'a stranger until it joins')
  members.add(stays.peerId.toString()) // it joined
  await waitFor('the stranger\'s connection to be closed', () => leaves.getConnections(node.peerId).length === 0, 15_000)
  assert.is(admission.stats.connectionsExpired, 1)
  assert.ok(stays.getConnections(node.peerId).length > 0, 'the new member keeps its connection')
  assert.is(await echo(stays, node, RAFT), 'hello', 'and may now open Raft')
  assert.is(admission.strangerConnections(), 0)
})

test('before metadata is attached, a member\'s streams wait to be judged (a restarting node lets its members in)', async () => {
  const key = await generateKeyPair('Ed25519')
  const admission = new Admission({ self: peerIdFromPrivateKey(key).toString() })
  const node = await gatedNode(admission, key)
  const member = await nodeHost()
  const stranger = await clientHost()
  const answers = [echo(member, node, RAFT), echo(stranger, node, RAFT)]
  await waitFor('both connections to be admitted', () => admission.strangerConnections() === 2, 10_000)
  admission.attach(sets(new Set([member.peerId.toString()])))
  assert.equal(await Promise.all(answers).then((a) => a.map((x) => x === 'hello')), [true, false])
  await waitFor('the member\'s slot to be freed once judged', async () => {
    await echo(await clientHost(), node, RPC_PROTOCOL) // any admission prunes
    return admission.strangerConnections() === 2
  }, 10_000)
})

test('trusted peers (from a join reply) count as members until metadata lists them; a throwing source means stranger', async () => {
  const admission = new Admission({ self: 'me' })
  assert.is(await admission.standing('me'), 'known')
  assert.is(await admission.standing('x'), undefined, 'nothing is judged before attach')
  const members = new Set<string>()
  admission.attach(sets(members))
  admission.trust(['a', 'me'])
  assert.is(await admission.standing('a'), 'member')
  members.add('a')
  assert.is(await admission.standing('a'), 'member')
  members.delete('a') // removed later: no longer trusted
  assert.is(await admission.standing('a'), 'stranger')
  const broken = new Admission({ self: 'me' })
  broken.attach(() => { throw new Error('metadata stopped') })
  assert.is(await broken.standing('b'), 'stranger')
  assert.ok(OPEN_PROTOCOLS.includes(RPC_PROTOCOL))
  assert.not.ok(OPEN_PROTOCOLS.includes(RAFT))
  assert.throws(() => new Admission({ self: 'me', strangersMax: 0 }))
  assert.throws(() => new Admission({ self: 'me', strangerLifetimeMs: 1.5 }))
})

test('a stream that is never judged in time is refused', async () => {
  const admission = new Admission({ self: 'me', standingWaitMs: 50 })
  let reason: unknown
  const stream = { abort: (err: unknown) => { reason = err }, addEventListener: () => {} } as unknown as Stream
  const connection = { remotePeer: { toString: () => 'x' } } as unknown as Connection
  assert.is(await admission.admitStream(RAFT, stream, connection), false)
  assert.is((reason as Error).name, 'PermissionDenied')
  assert.is(await admission.admitStream(RPC_PROTOCOL, stream, connection), true)
})

test('composeGaters: any deny denies; filterMultiaddrForPeer keeps only what all keep', async () => {
  const allow: ConnectionGater = { denyDialPeer: () => false, filterMultiaddrForPeer: () => true }
  const deny: ConnectionGater = { denyDialPeer: async () => true, filterMultiaddrForPeer: () => false }
  const peer = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
  const both = composeGaters(allow, undefined, deny)
  assert.is(await both.denyDialPeer?.(peer), true)
  assert.is(await both.filterMultiaddrForPeer?.(peer, undefined as any), false)
  const one = composeGaters(allow)
  assert.is(await one.denyDialPeer?.(peer), false)
  assert.is(await one.filterMultiaddrForPeer?.(peer, undefined as any), true)
  assert.is(composeGaters().denyDialPeer, undefined)
})

test.run()
