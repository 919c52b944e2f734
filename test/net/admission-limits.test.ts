import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { PermissionDeniedError } from '@dfs/api'
import type { PrivateKey } from '@libp2p/interface'
import { createHost, type Host, type NodeHost } from '../../src/net/host.js'
import { Admission, remoteAddressOf, type AdmissionInit } from '../../src/net/admission.js'
import { RpcServer } from '../../src/net/rpc/server.js'
import { RpcClient } from '../../src/net/rpc/client.js'
import { Cleanup, waitFor } from '../membership/helpers.js'

/**
 * Admission limits through real hosts on 127.0.0.1 and the real RPC server: simultaneous first calls,
 * a stranger's concurrent calls, stranger connections per remote address, and a stranger's lifetime
 * around a call in flight.
 */
const test = suite('net/admission limits (real hosts and RPC on 127.0.0.1)')

const cleanup = new Cleanup()
test.after(async () => { await cleanup.run() })

interface Rig { node: NodeHost, admission: Admission, rpc: RpcServer, known: Set<string> }

/**
 * A node whose RPC server serves `t.sleep` ({ ms } → { ms }) to anyone (like `cluster.join`, which a
 * stranger may call) and `t.user` only to known identities.
 */
async function rig (init: Partial<AdmissionInit> = {}): Promise<Rig> {
  const key = await generateKeyPair('Ed25519')
  const admission = new Admission({ self: peerIdFromPrivateKey(key).toString(), ...init })
  const node = await createHost({ role: 'node', privateKey: key, listen: ['/ip4/127.0.0.1/tcp/0'], connectionGater: admission.gater(), streamGate: admission.streamGate() })
  const known = new Set<string>()
  admission.attach((peer) => known.has(peer) ? 'known' : 'stranger')
  const rpc = new RpcServer({
    host: node,
    authorize: async (peer, action) => {
      if (action !== 'open' && !known.has(peer)) throw new PermissionDeniedError(`${peer} has no role`)
    }
  })
  const sleep = { kind: 'unary', params: (raw: unknown) => raw as { ms: number }, handle: async ({ params, signal }: { params: { ms: number }, signal: AbortSignal }) => {
    await new Promise((resolve) => { const t = setTimeout(resolve, params.ms); signal.addEventListener('abort', () => { clearTimeout(t); resolve(undefined) }) })
    return { ms: params.ms }
  } } as const
  rpc.register({ ...sleep, name: 't.sleep', action: 'open' }, { ...sleep, name: 't.user', action: 'user' })
  await rpc.start()
  admission.watchCalls((peer) => rpc.callsInFlight(peer))
  cleanup.add(async () => { admission.stop(); await rpc.stop(); await node.stop() })
  return { node, admission, rpc, known }
}

async function client (key?: PrivateKey): Promise<Host> {
  const host = await createHost({ privateKey: key ?? await generateKeyPair('Ed25519') })
  cleanup.add(async () => { await host.stop() })
  return host
}

/** Each call's outcome: `ok` or the error's name. */
async function outcomes (calls: Array<Promise<unknown>>): Promise<string[]> {
  return (await Promise.allSettled(calls)).map((r) => r.status === 'fulfilled' ? 'ok' : (r.reason as Error).name)
}

const count = (xs: string[], x: string): number => xs.filter((y) => y === x).length

test('16 simultaneous first calls of a new client identity on a new connection all succeed', async () => {
  const { node, known } = await rig()
  const user = await client()
  known.add(user.peerId.toString())
  // the node's full address (with /p2p): the client opens every stream as soon as the muxer is up,
  // while the node is still admitting the connection
  const rpc = new RpcClient({ host: user, target: node.getMultiaddrs()[0] })
  const results = await outcomes(Array.from({ length: 16 }, async () => await rpc.callUnchecked('t.user', { ms: 50 }, { timeoutMs: 20_000 })))
  assert.equal(results, Array.from({ length: 16 }, () => 'ok'))
  assert.is(user.getConnections(node.peerId).length, 1, 'on one connection')
  await rpc.close()
})

test('a stranger has at most strangerStreamsMax calls at once; the others are refused with PermissionDenied; a user is not limited', async () => {
  const { node, admission, known } = await rig({ strangerStreamsMax: 4 })
  const stranger = await client()
  const rpc = new RpcClient({ host: stranger, target: node.getMultiaddrs()[0] })
  const results = await outcomes(Array.from({ length: 8 }, async () => await rpc.callUnchecked('t.sleep', { ms: 1000 }, { timeoutMs: 20_000 })))
  assert.is(count(results, 'ok'), 4, results.join())
  assert.is(count(results, 'PermissionDenied'), 4, results.join())
  assert.is(admission.stats.strangerStreamsRefused, 4)
  await rpc.close()
  await waitFor('the stranger\'s streams to be forgotten', () => admission.strangerStreams(stranger.peerId.toString()) === 0, 10_000)

  const user = await client()
  known.add(user.peerId.toString())
  const urpc = new RpcClient({ host: user, target: node.getMultiaddrs()[0] })
  const userResults = await outcomes(Array.from({ length: 12 }, async () => await urpc.callUnchecked('t.sleep', { ms: 500 }, { timeoutMs: 20_000 })))
  assert.is(count(userResults, 'ok'), 12, userResults.join())
  await urpc.close()
})

test('stranger connections from one address are capped below the total; users from it are not', async () => {
  const { node, admission, known } = await rig({ strangersMax: 8, strangersPerAddressMax: 2, strangerLifetimeMs: 60_000 })
  const strangers = [await client(), await client(), await client()]
  const call = async (host: Host): Promise<string> => (await outcomes([new RpcClient({ host, target: node.getMultiaddrs()[0] }).callUnchecked('t.sleep', { ms: 1 }, { timeoutMs: 10_000 })]))[0]
  assert.is(await call(strangers[0]), 'ok')
  assert.is(await call(strangers[1]), 'ok')
  assert.is(admission.strangerConnections('127.0.0.1'), 2)
  assert.is.not(await call(strangers[2]), 'ok', 'a third stranger from 127.0.0.1 is denied')
  assert.is(admission.stats.connectionsDenied, 1)
  const user = await client()
  known.add(user.peerId.toString())
  assert.is(await call(user), 'ok', 'a user from the same address gets in')
  await strangers[0].hangUp(node.peerId)
  await waitFor('the slot to be free', () => admission.strangerConnections('127.0.0.1') === 1, 10_000)
  assert.is(await call(strangers[2]), 'ok')
  assert.is(remoteAddressOf({ remoteAddr: multiaddr('/ip6/::1/tcp/5') }), '::1')
  assert.is(remoteAddressOf({ remoteAddr: multiaddr('/ip4/10.1.2.3/tcp/7/p2p/12D3KooWHCXLwqL852aqQXKSXAaxhehy9a4MoRwCvs7PZAhALEmb') }), '10.1.2.3')
})

test('a stranger\'s connection outlives its lifetime only while a call runs, and never its hard limit', async () => {
  const { node, admission } = await rig({ strangerLifetimeMs: 500, strangerLifetimeMaxMs: 4000 })
  const stranger = await client()
  const rpc = new RpcClient({ host: stranger, target: node.getMultiaddrs()[0] })
  // a join-like call that takes longer than the lifetime is not cut
  assert.equal(await rpc.callUnchecked('t.sleep', { ms: 1500 }, { timeoutMs: 20_000 }), { ms: 1500 })
  await waitFor('the idle stranger connection to be closed', () => stranger.getConnections(node.peerId).length === 0, 10_000)
  assert.is(admission.stats.connectionsExpired, 1)
  // a call that would run past the hard limit is cut there
  const started = Date.now()
  const rpc2 = new RpcClient({ host: stranger, target: node.getMultiaddrs()[0] })
  const [result] = await outcomes([rpc2.callUnchecked('t.sleep', { ms: 15_000 }, { timeoutMs: 20_000 })])
  assert.is.not(result, 'ok')
  assert.ok(Date.now() - started < 12_000, `cut after ${Date.now() - started} ms`)
  assert.is(admission.stats.connectionsExpired, 2)
})

test.run()
