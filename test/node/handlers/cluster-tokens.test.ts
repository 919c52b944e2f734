import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { errorFromWire, type MetadataOp, type MetadataService, type MetadataView } from '@dfs/api'
import { MetadataStateMachine } from '@dfs/raft-metadata'
import { clusterMethods } from '../../../src/node/handlers/cluster.js'
import { clusterPin, generateClusterKey, identifyNonce, verifyClusterProof } from '../../../src/security/cluster-key.js'

/**
 * The token and join methods of a node over a real state machine: the token's form is checked
 * before metadata is read, a use is spent per join, a refusal changes nothing, and identify proves
 * the cluster for the caller and this node.
 */
const test = suite('node/handlers: join tokens, join and identify')

async function peer (): Promise<string> {
  return peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
}

interface Node {
  call: (method: string, params: unknown, caller?: string) => Promise<any>
  sm: MetadataStateMachine
  reads: () => number
  learners: string[]
  admin: string
  nodeId: string
}

async function node (): Promise<Node> {
  const [admin, nodeId] = [await peer(), await peer()]
  const sm = new MetadataStateMachine()
  const key = generateClusterKey()
  let index = 1
  const apply = (op: MetadataOp): any => {
    const r = sm.apply(op, index++)
    if (!r.ok) throw errorFromWire(r.error)
    return r
  }
  apply({ type: 'InitCluster', clusterId: 'c1', createdAtMs: Date.now(), admin, member: { id: nodeId, name: 'n1', region: 'r', addrs: [] }, clusterKey: key })
  let reads = 0
  const learners: string[] = []
  const metadata = {
    status: () => ({ leader: nodeId, term: 1 }),
    read: async <T>(fn: (view: MetadataView) => T): Promise<T> => { reads++; return fn(sm.view) },
    staleRead: <T>(fn: (view: MetadataView) => T): T => { reads++; return fn(sm.view) },
    propose: async (op: MetadataOp) => apply(op),
    membership: { members: () => ({ voters: [nodeId], learners }), addLearner: async (id: string) => { learners.push(id) }, remove: async () => {} }
  } as unknown as MetadataService
  const methods = clusterMethods({ nodeId, metadata, health: () => 'healthy' })
  const call = async (name: string, raw: unknown, caller = admin): Promise<any> => {
    const m = methods.find((x) => x.name === name)
    if (m == null || m.kind !== 'unary') throw new Error(`no ${name}`)
    return await m.handle({ peer: caller, params: m.params(raw), signal: new AbortController().signal })
  }
  return { call, sm, reads: () => reads, learners, admin, nodeId }
}

async function fails (p: Promise<unknown>, name: string): Promise<void> {
  try {
    await p
    assert.unreachable(`expected ${name}`)
  } catch (err: any) {
    assert.is(err.name, name, err.message)
  }
}

const join = (token: string): Record<string, unknown> => ({ token, name: 'j', region: 'r', addrs: ['/ip4/127.0.0.1/tcp/4001'] })

test('a malformed token is refused before anything is read', async () => {
  const n = await node()
  const before = n.reads()
  for (const junk of ['', 'dfs-join.zz', 'x'.repeat(200), 42, null]) {
    await fails(n.call('cluster.join', { ...join(''), token: junk }, await peer()), 'InvalidToken')
  }
  assert.is(n.reads(), before)
})

test('a one-use token admits one node; the second is refused and nothing changes', async () => {
  const n = await node()
  const created = await n.call('cluster.token.create', { ttlMs: 60_000 })
  assert.is(created.uses, 1)
  assert.is(created.token.split('.')[3], clusterPin(n.sm.view.cluster()?.publicKey as string), 'the token pins this cluster')
  const [a, b] = [await peer(), await peer()]
  await n.call('cluster.join', join(created.token), a)
  assert.equal(n.learners, [a])
  const members = n.sm.view.members().length
  await fails(n.call('cluster.join', join(created.token), b), 'InvalidToken')
  assert.equal(n.learners, [a])
  assert.is(n.sm.view.members().length, members)
  assert.equal((await n.call('cluster.token.list', {})).tokens, [])
})

test('a token for another peer, a revoked token: InvalidToken, and the token keeps its uses', async () => {
  const n = await node()
  const [owner, other] = [await peer(), await peer()]
  const forOwner = await n.call('cluster.token.create', { forPeer: owner, uses: 2 })
  await fails(n.call('cluster.join', join(forOwner.token), other), 'InvalidToken')
  const listed = (await n.call('cluster.token.list', {})).tokens
  assert.equal(listed.map((t: any) => [t.id, t.usesLeft, t.forPeer]), [[forOwner.id, 2, owner]])
  assert.not.ok(JSON.stringify(listed).includes(forOwner.token.split('.')[2]))
  assert.equal(await n.call('cluster.token.revoke', { id: forOwner.id }), { id: forOwner.id })
  await fails(n.call('cluster.join', join(forOwner.token), owner), 'InvalidToken')
  await fails(n.call('cluster.token.revoke', { id: forOwner.id }), 'NotFound')
  await fails(n.call('cluster.token.revoke', { id: '../x' }), 'InvalidArgument')
  assert.equal(n.learners, [])
})

test('token create checks its params: ttl within 1s..24h, uses within 1..100, forPeer a PeerId', async () => {
  const n = await node()
  for (const bad of [{ ttlMs: 25 * 3600_000 }, { ttlMs: 10 }, { uses: 0 }, { uses: 101 }, { forPeer: 'nobody' }]) {
    await fails(n.call('cluster.token.create', bad), 'InvalidArgument')
  }
  assert.equal((await n.call('cluster.token.list', {})).tokens, [])
})

test('identify proves the cluster to its caller on this node, and checks the nonce', async () => {
  const n = await node()
  const caller = await peer()
  const nonce = identifyNonce()
  const proof = await n.call('cluster.identify', { nonce }, caller)
  const pin = clusterPin(n.sm.view.cluster()?.publicKey as string)
  assert.equal(verifyClusterProof(proof, { nonce, caller, server: n.nodeId, pin }), { clusterId: 'c1', pin })
  await fails(Promise.resolve().then(() => verifyClusterProof(proof, { nonce, caller: n.admin, server: n.nodeId, pin })), 'WrongCluster')
  assert.not.ok(JSON.stringify(proof).includes(n.sm.view.clusterKey()?.privateKey as string), 'never the private half')
  await fails(n.call('cluster.identify', { nonce: 'short' }, caller), 'InvalidArgument')
})

test('a joining node\'s name and addresses are checked before anything is stored; a refusal spends no use', async () => {
  const n = await node()
  const { token } = await n.call('cluster.token.create', { uses: 1 })
  const joiner = await peer()
  const bad: Array<Record<string, unknown>> = [
    { addrs: [] },
    { addrs: ['not a multiaddr'] },
    { addrs: ['/ip4/127.0.0.1/udp/4001'] },
    { addrs: Array.from({ length: 17 }, (_, i) => `/ip4/127.0.0.1/tcp/${4000 + i}`) },
    { addrs: ['/ip4/127.0.0.1/tcp/4001/p2p/' + await peer()] },
    { name: 'bad\u202ename' },
    { region: 'x'.repeat(65) }
  ]
  for (const patch of bad) await fails(n.call('cluster.join', { ...join(token), ...patch }, joiner), 'InvalidArgument')
  assert.is(n.sm.members().length, 1)
  assert.is(n.sm.joinTokens()[0].usesLeft, 1, 'no use was spent')
  // its own PeerId in an address is fine, and the addresses are stored as given
  const mine = `/ip4/127.0.0.1/tcp/4001/p2p/${joiner}`
  await n.call('cluster.join', { ...join(token), addrs: [mine] }, joiner)
  assert.equal(n.sm.members().find((m) => m.id === joiner)?.addrs, [mine])
})

test.run()
