import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { MetadataStateMachine } from '@dfs/raft-metadata'
import {
  JOIN_TOKEN_TTL_MS_MAX, mintJoinToken, parseJoinToken, readJoinTokenFile, verifyJoinToken
} from '../../src/security/join-token.js'
import {
  CLUSTER_PIN_LENGTH, clusterPin, generateClusterKey, identifyMessage, identifyNonce, proveCluster, requireNonce, verifyClusterProof
} from '../../src/security/cluster-key.js'

const test = suite('security/join tokens and the cluster key')

const now = 1_700_000_000_000

async function peer (): Promise<string> {
  return peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
}

function cluster (options: { uses?: number, forPeer?: string, pin?: string } = {}): { sm: MetadataStateMachine, token: string, id: string } {
  const sm = new MetadataStateMachine()
  const { token, record } = mintJoinToken('admin1', { ttlMs: 60_000, uses: options.uses ?? 1, forPeer: options.forPeer, pin: options.pin }, now)
  assert.ok(sm.apply({ type: 'CreateJoinToken', token: record }, 1).ok)
  return { sm, token, id: record.id }
}

const fails = (fn: () => unknown, name: string): void => {
  try {
    fn()
    assert.unreachable(`expected ${name}`)
  } catch (err: any) {
    assert.is(err.name, name, err.message)
  }
}

async function failsAsync (fn: () => Promise<unknown>, name: string): Promise<void> {
  try {
    await fn()
    assert.unreachable(`expected ${name}`)
  } catch (err: any) {
    assert.is(err.name, name, err.message)
  }
}

test('a minted token verifies until it expires; metadata holds only a hash of its secret', async () => {
  const joiner = await peer()
  const { sm, token } = cluster()
  const record = verifyJoinToken(sm.view, token, now + 59_999, joiner)
  assert.is(record.createdBy, 'admin1')
  assert.is(record.usesLeft, 1)
  assert.not.ok(JSON.stringify(record).includes(token.split('.')[2]), 'the secret is not stored')
  fails(() => verifyJoinToken(sm.view, token, now + 60_000, joiner), 'TokenExpired')
})

test('a wrong secret, an unknown id, or garbage is InvalidToken', () => {
  const { sm, token } = cluster()
  const [prefix, id, secret] = token.split('.')
  const flipped = (secret[0] === 'A' ? 'B' : 'A') + secret.slice(1)
  fails(() => verifyJoinToken(sm.view, `${prefix}.${id}.${flipped}`, now), 'InvalidToken')
  fails(() => verifyJoinToken(sm.view, `${prefix}.${'0'.repeat(16)}.${secret}`, now), 'InvalidToken')
  for (const junk of ['', 'dfs-join', `${token}x`, `${token}.`, `${token}.${'A'.repeat(CLUSTER_PIN_LENGTH + 1)}`, token.toUpperCase(), 'x'.repeat(10_000)]) {
    fails(() => verifyJoinToken(sm.view, junk, now), 'InvalidToken')
  }
  for (const junk of [42, null, undefined, {}, ['dfs-join']]) fails(() => parseJoinToken(junk), 'InvalidToken')
})

test('a token carries the cluster pin when there is one; a token without one (older versions) still parses', () => {
  const key = generateClusterKey()
  const pin = clusterPin(key.publicKey)
  const pinned = mintJoinToken('admin1', { ttlMs: 60_000, uses: 1, pin }, now).token
  assert.match(pinned, /^dfs-join\.[0-9a-f]{16}\.[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{22}$/)
  assert.is(parseJoinToken(pinned).pin, pin)
  const legacy = mintJoinToken('admin1', { ttlMs: 60_000, uses: 1 }, now).token
  assert.is(legacy.split('.').length, 3)
  assert.is(parseJoinToken(legacy).pin, undefined)
})

test('ttl and uses are bounded: at most 24 h and 100 nodes', () => {
  assert.is(JOIN_TOKEN_TTL_MS_MAX, 24 * 3600 * 1000)
  assert.throws(() => mintJoinToken('a', { ttlMs: JOIN_TOKEN_TTL_MS_MAX + 1, uses: 1 }, now), RangeError)
  assert.throws(() => mintJoinToken('a', { ttlMs: 999, uses: 1 }, now), RangeError)
  assert.throws(() => mintJoinToken('a', { ttlMs: 60_000, uses: 0 }, now), RangeError)
  assert.throws(() => mintJoinToken('a', { ttlMs: 60_000, uses: 101 }, now), RangeError)
})

test('each join spends one use atomically; the last use drops the token', async () => {
  const [a, b, c] = [await peer(), await peer(), await peer()]
  const { sm, token, id } = cluster({ uses: 2 })
  verifyJoinToken(sm.view, token, now, a)
  assert.ok(sm.apply({ type: 'UseJoinToken', id, peer: a, nowMs: now }, 2).ok)
  assert.is(sm.view.joinToken(id)?.usesLeft, 1)
  verifyJoinToken(sm.view, token, now, b)
  assert.ok(sm.apply({ type: 'UseJoinToken', id, peer: b, nowMs: now }, 3).ok)
  assert.is(sm.view.joinToken(id), undefined)
  fails(() => verifyJoinToken(sm.view, token, now, c), 'InvalidToken')
  const refused = sm.apply({ type: 'UseJoinToken', id, peer: c, nowMs: now }, 4)
  assert.not.ok(refused.ok)
})

test('a token for one peer refuses every other peer', async () => {
  const [owner, other] = [await peer(), await peer()]
  const { sm, token } = cluster({ forPeer: owner })
  fails(() => verifyJoinToken(sm.view, token, now, other), 'InvalidToken')
  assert.is(verifyJoinToken(sm.view, token, now, owner).forPeer, owner)
})

test('pins: 22 characters, the same for the same key, different for another', () => {
  const a = generateClusterKey()
  const b = generateClusterKey()
  assert.is(clusterPin(a.publicKey).length, CLUSTER_PIN_LENGTH)
  assert.is(clusterPin(a.publicKey), clusterPin(a.publicKey))
  assert.is.not(clusterPin(a.publicKey), clusterPin(b.publicKey))
})

test('identify: a proof verifies for its caller, server and nonce, against the pin', async () => {
  const key = generateClusterKey()
  const [caller, server] = [await peer(), await peer()]
  const nonce = identifyNonce()
  const proof = proveCluster(key, { clusterId: 'c1', nonce, caller, server })
  const ok = verifyClusterProof(proof, { nonce, caller, server, pin: clusterPin(key.publicKey) })
  assert.equal(ok, { clusterId: 'c1', pin: clusterPin(key.publicKey) })
  // without a pin to check, the proof still has to be signed by the key it names
  assert.is(verifyClusterProof(proof, { nonce, caller, server }).pin, clusterPin(key.publicKey))
})

test('identify: a relayed, replayed, misdirected, forged or wrong-cluster proof is WrongCluster', async () => {
  const key = generateClusterKey()
  const other = generateClusterKey()
  const pin = clusterPin(key.publicKey)
  const [victim, impostor, member] = [await peer(), await peer(), await peer()]
  const nonce = identifyNonce()
  // the impostor relays the victim's nonce to a real member: the member signs the impostor as the caller
  const relayed = proveCluster(key, { clusterId: 'c1', nonce, caller: impostor, server: member })
  fails(() => verifyClusterProof(relayed, { nonce, caller: victim, server: impostor, pin }), 'WrongCluster')
  fails(() => verifyClusterProof(relayed, { nonce, caller: victim, server: member, pin }), 'WrongCluster')
  // an old answer for another nonce
  const replay = proveCluster(key, { clusterId: 'c1', nonce: identifyNonce(), caller: victim, server: member })
  fails(() => verifyClusterProof(replay, { nonce, caller: victim, server: member, pin }), 'WrongCluster')
  // a node of another cluster proves its own cluster, not the pinned one
  const elsewhere = proveCluster(other, { clusterId: 'c2', nonce, caller: victim, server: member })
  fails(() => verifyClusterProof(elsewhere, { nonce, caller: victim, server: member, pin }), 'WrongCluster')
  // the pinned public key with a signature made by another key
  const forged = { ...elsewhere, publicKey: key.publicKey }
  fails(() => verifyClusterProof(forged, { nonce, caller: victim, server: member, pin }), 'WrongCluster')
  // a changed cluster id breaks the signature
  const good = proveCluster(key, { clusterId: 'c1', nonce, caller: victim, server: member })
  fails(() => verifyClusterProof({ ...good, clusterId: 'c3' }, { nonce, caller: victim, server: member, pin }), 'WrongCluster')
  for (const junk of [null, 'x', {}, { ...good, signature: 'A'.repeat(86) }, { ...good, publicKey: 'B'.repeat(43) }, { ...good, signature: 42 }]) {
    fails(() => verifyClusterProof(junk, { nonce, caller: victim, server: member, pin }), 'WrongCluster')
  }
})

test('identify: the signed message separates its fields (no two field lists sign the same bytes)', () => {
  const a = identifyMessage({ clusterId: 'ab', nonce: 'c', caller: 'x', server: 'y' })
  const b = identifyMessage({ clusterId: 'a', nonce: 'bc', caller: 'x', server: 'y' })
  assert.not.ok(a.equals(b))
  assert.ok(a.subarray(4, 4 + 23).toString() === 'dfs/cluster-identify/v1')
  fails(() => requireNonce('short'), 'InvalidArgument')
  fails(() => requireNonce(7), 'InvalidArgument')
  assert.is(requireNonce(identifyNonce()).length, 32)
})

test('a join token file is read trimmed, and refused when others may read it, or empty', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dfs-token-'))
  try {
    const path = join(dir, 'token')
    await writeFile(path, '  dfs-join.abc \n', { mode: 0o600 })
    await chmod(path, 0o600)
    assert.is(await readJoinTokenFile(path), 'dfs-join.abc')
    await chmod(path, 0o644)
    await failsAsync(async () => await readJoinTokenFile(path), 'ConfigError')
    await writeFile(join(dir, 'empty'), '\n', { mode: 0o600 })
    await failsAsync(async () => await readJoinTokenFile(join(dir, 'empty')), 'ConfigError')
    await failsAsync(async () => await readJoinTokenFile(join(dir, 'missing')), 'ConfigError')
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test.run()
