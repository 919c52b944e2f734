import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { DfsClient } from '../../src/client/index.js'
import { listenAddress, Sandbox, waitFor, type NodeHandle, type RunResult } from './harness.js'

/**
 * Join tokens through real processes: uses, --for, revoke, expiry and the list; a token pinned to
 * cluster A is refused by the joining node when cluster B answers, before B is sent it; and the CLI
 * refuses another cluster at an address it remembers (DFS_ACCEPT_NEW_CLUSTER=1 accepts it), while a
 * new node of the same cluster there is accepted.
 */
const test = suite('e2e: join tokens and known clusters')
const FAST = ['--heartbeat-ms', '200', '--failure-timeout-ms', '1500']

let sb: Sandbox
let a1: NodeHandle
let b1: NodeHandle
/** The node the one-use token admitted into cluster A. */
let j1: NodeHandle
const started: NodeHandle[] = []
/** Made first so it has expired by the time the expiry test runs (no other token is made before: making one drops expired ones). */
let expiring: { token: string, id: string, expiresAt: string }

test.before(async () => {
  sb = await Sandbox.create()
  ;[a1, b1] = await Promise.all([sb.startNode({ args: ['--name', 'a1', ...FAST] }), sb.startNode({ args: ['--name', 'b1', ...FAST] })])
  started.push(a1, b1)
  expiring = (await dfs(['cluster', 'token', 'create', '--ttl', '2s', '--node', a1.addr])).json
})
test.after(async () => {
  for (const c of clients.values()) await c.close()
  for (const n of started) await n.stop()
  await sb.cleanup()
})

async function dfs (args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  const r = await sb.run([...args, '--json'], { env })
  assert.is(r.code, 0, `dfs ${args.join(' ')}: ${r.stderr}`)
  return r
}

/** Starts a node that must be refused; returns the error it exits with. */
async function refusedJoin (via: NodeHandle, token: string): Promise<{ name: string, message: string }> {
  const dataDir = await mkdtemp(join(sb.dir, 'refused-'))
  const r = await sb.run(['node', 'start', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--peers', via.addr, '--json'],
    { env: { DFS_JOIN_TOKEN: token }, timeoutMs: 30_000 })
  assert.not.equal(r.code, 0, 'the node was refused')
  assert.ok(r.json?.error != null, r.stdout + r.stderr)
  return r.json.error
}

/** In-process clients (real connections to the real processes) for the reads that only check state. */
const clients = new Map<string, DfsClient>()
async function client (via: NodeHandle): Promise<DfsClient> {
  let c = clients.get(via.addr)
  if (c === undefined) {
    c = await sb.client(via)
    clients.set(via.addr, c)
  }
  return c
}

async function memberIds (via: NodeHandle): Promise<string[]> {
  return (await (await client(via)).call('cluster.nodes', {})).nodes.map((n) => n.id).sort()
}

/** The live tokens as `dfs cluster token list --json` shows them, through the CLI or an in-process client. */
async function tokens (via: NodeHandle, how: 'cli' | 'rpc' = 'rpc'): Promise<any[]> {
  if (how === 'cli') return (await dfs(['cluster', 'token', 'list', '--node', via.addr])).json.tokens
  const r = await (await client(via)).call('cluster.token.list', {})
  return r.tokens.map((t) => ({ id: t.id, expiresAt: new Date(t.expiresAtMs).toISOString(), usesLeft: t.usesLeft, for: t.forPeer }))
}

test('an expired token is refused with TokenExpired; a ttl past 24h is refused', async () => {
  await waitFor(async () => Date.now() > Date.parse(expiring.expiresAt) + 200 ? true : undefined, 10_000, 'the token to expire')
  assert.is((await tokens(a1, 'cli')).find((t) => t.id === expiring.id), undefined, 'the list shows live tokens only')
  const err = await refusedJoin(a1, expiring.token)
  assert.is(err.name, 'TokenExpired', err.message)
  const long = await sb.run(['cluster', 'token', 'create', '--ttl', '25h', '--json', '--node', a1.addr])
  assert.is(long.json?.error?.name, 'InvalidArgument')
})

test('a one-use token admits one node (from a 0600 token file) and refuses the second; list shows the joins left', async () => {
  const created = (await dfs(['cluster', 'token', 'create', '--uses', '1', '--node', a1.addr])).json
  assert.equal(Object.keys(created).sort(), ['expiresAt', 'id', 'token', 'uses'])
  assert.is(created.uses, 1)
  assert.match(created.token, new RegExp(`^dfs-join\\.${created.id}\\.[A-Za-z0-9_-]{43}\\.[A-Za-z0-9_-]{22}$`))
  const list = await sb.run(['cluster', 'token', 'list', '--json', '--node', a1.addr])
  assert.equal(list.json.tokens.find((t: any) => t.id === created.id), { id: created.id, expiresAt: created.expiresAt, usesLeft: 1, for: null })
  assert.not.ok(list.stdout.includes(created.token.split('.')[2]), 'the list never shows a secret')

  const file = join(sb.dir, 'token-j1')
  await writeFile(file, `${created.token}\n`, { mode: 0o600 })
  j1 = await sb.startNode({ args: ['--name', 'j1', '--peers', a1.addr, '--join-token-file', file, ...FAST] })
  started.push(j1)
  assert.equal(await memberIds(a1), [a1.id, j1.id].sort())
  assert.is((await tokens(a1)).find((t) => t.id === created.id), undefined, 'the used-up token is gone')

  const err = await refusedJoin(a1, created.token)
  assert.is(err.name, 'InvalidToken', err.message)
  assert.equal(await memberIds(a1), [a1.id, j1.id].sort(), 'the second node was not added')

  // a member restarts on its data dir with the same command line after its token file was deleted:
  // it needs no token any more, so it does not read the file
  assert.is(await j1.stop(), 0)
  await rm(file)
  j1 = await sb.startNode({ dataDir: j1.dataDir, args: ['--name', 'j1', '--peers', a1.addr, '--join-token-file', file, ...FAST] })
  started.push(j1)
  assert.equal(await memberIds(j1), [a1.id, j1.id].sort())
})

test('a token --for another peer is refused and keeps its use', async () => {
  const other = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
  const created = (await dfs(['cluster', 'token', 'create', '--for', other, '--node', a1.addr])).json
  assert.equal((await tokens(a1)).find((t) => t.id === created.id), { id: created.id, expiresAt: created.expiresAt, usesLeft: 1, for: other })
  const err = await refusedJoin(a1, created.token)
  assert.is(err.name, 'InvalidToken', err.message)
  assert.is((await tokens(a1)).find((t) => t.id === created.id)?.usesLeft, 1, 'a refusal spends nothing')
  const bad = await sb.run(['cluster', 'token', 'create', '--for', 'not-a-peer', '--json', '--node', a1.addr])
  assert.is(bad.json?.error?.name, 'InvalidArgument')
})

test('a revoked token is refused; revoking an unknown id is NotFound', async () => {
  const created = (await dfs(['cluster', 'token', 'create', '--uses', '3', '--node', a1.addr])).json
  assert.equal((await dfs(['cluster', 'token', 'revoke', created.id, '--node', a1.addr])).json, { id: created.id })
  assert.is((await tokens(a1)).find((t) => t.id === created.id), undefined)
  const err = await refusedJoin(a1, created.token)
  assert.is(err.name, 'InvalidToken', err.message)
  const again = await sb.run(['cluster', 'token', 'revoke', created.id, '--json', '--node', a1.addr])
  assert.is(again.json?.error?.name, 'NotFound')
})

test('a token pinned to cluster A is refused by the joining node when cluster B answers, before B sees it', async () => {
  const ofA = (await dfs(['cluster', 'token', 'create', '--node', a1.addr])).json.token
  const err = await refusedJoin(b1, ofA)
  assert.is(err.name, 'WrongCluster', err.message)
  // B's own secret under A's pin: had B been sent it, B would have admitted the node and spent its use
  const ofB = (await dfs(['cluster', 'token', 'create', '--node', b1.addr])).json
  const pinA = ofA.split('.')[3]
  const mixed = ofB.token.split('.').slice(0, 3).concat(pinA).join('.')
  const err2 = await refusedJoin(b1, mixed)
  assert.is(err2.name, 'WrongCluster', err2.message)
  assert.equal(await memberIds(b1), [b1.id])
  assert.is((await tokens(b1)).find((t) => t.id === ofB.id)?.usesLeft, 1, 'B never received its token')
})

test('the CLI refuses another cluster at a remembered address, accepts it when told, and accepts a new node of the same cluster', async () => {
  const known = join(sb.dir, 'home', '.config', 'dfs', 'known_clusters.json')
  const at = listenAddress(b1)
  await dfs(['cluster', 'status', '--node', at])
  const remembered = JSON.parse(await readFile(known, 'utf8'))
  assert.is(remembered.clusters[at].peerId, b1.id)
  assert.is((await stat(known)).mode & 0o777, 0o600)

  // another cluster takes over B's address
  await b1.stop()
  const c1 = await sb.startNode({ listen: at, args: ['--name', 'c1', ...FAST] })
  started.push(c1)
  const refused = await sb.run(['cluster', 'status', '--json', '--node', at])
  assert.not.equal(refused.code, 0)
  assert.is(refused.json?.error?.name, 'WrongCluster')
  assert.match(refused.json.error.message, /DFS_ACCEPT_NEW_CLUSTER=1/)
  const accepted = await dfs(['cluster', 'status', '--node', at], { DFS_ACCEPT_NEW_CLUSTER: '1' })
  assert.is(accepted.json.clusterId, (await dfs(['cluster', 'status', '--node', c1.addr])).json.clusterId)
  await dfs(['cluster', 'status', '--node', at])
  assert.is(JSON.parse(await readFile(known, 'utf8')).clusters[at].peerId, c1.id, 'the new cluster is remembered')

  // a new node of cluster A at the address of A's member j1: the same cluster, accepted and remembered
  const jat = listenAddress(j1)
  await dfs(['cluster', 'status', '--node', jat])
  await j1.stop()
  const t = (await dfs(['cluster', 'token', 'create', '--node', a1.addr])).json.token
  const j2 = await sb.startNode({ listen: jat, args: ['--name', 'j2', '--peers', a1.addr, '--join-token', t, ...FAST] })
  started.push(j2)
  await dfs(['cluster', 'status', '--node', jat])
  assert.is(JSON.parse(await readFile(known, 'utf8')).clusters[jat].peerId, j2.id)
})

test('the audit log records token changes, joins and refused joins', async () => {
  const want: Array<[string, boolean, string | null, string?]> = [
    ['cluster.token.create', true, null], ['cluster.token.revoke', true, null], ['cluster.token.revoke', false, 'NotFound'],
    ['cluster.join', true, null, j1.id], ['cluster.join', false, 'InvalidToken'], ['cluster.join', false, 'TokenExpired']
  ]
  await waitFor(async () => {
    const r = await sb.run(['cluster', 'audit', '--limit', '10000', '--json', '--node', a1.addr])
    const es: any[] = r.json?.entries ?? []
    return want.every(([op, ok, err, user]) => es.some((e) => e.operation === op && e.success === ok && e.error === err && (user === undefined || e.user === user)))
      ? true
      : undefined
  }, 10_000, `audit entries for ${want.map((w) => w.join(' ')).join(', ')}`)
})

test.run()
