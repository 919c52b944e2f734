import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { S3_ACCESS_KEY_ID_PATTERN, S3_SECRET_KEY_PATTERN, errorFromWire, type MetadataOp, type MetadataService, type MetadataView } from '@dfs/api'
import { MetadataStateMachine } from '@dfs/raft-metadata'
import { newAccessKeyId, newSecretAccessKey, s3KeyMethods } from '../../../src/node/handlers/s3-keys.js'

/**
 * The S3 key methods over a real state machine: keys are made for users only, a tenant's admin
 * manages its tenant's users' keys and nothing else, and no listing carries a secret.
 */
const test = suite('node/handlers: s3 keys')

async function peer (): Promise<string> {
  return peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
}

async function node (): Promise<{ call: (method: string, params: unknown, caller: string) => Promise<any>, apply: (op: MetadataOp) => unknown, sm: MetadataStateMachine, admin: string }> {
  const admin = await peer()
  const sm = new MetadataStateMachine()
  let index = 1
  const apply = (op: MetadataOp): any => {
    const r = sm.apply(op, index++)
    if (!r.ok) throw errorFromWire(r.error)
    return r
  }
  apply({ type: 'InitCluster', clusterId: 'c1', createdAtMs: 1, admin, member: { id: admin, name: 'n1', region: 'r', addrs: [] } })
  const metadata = {
    read: async <T>(fn: (view: MetadataView) => T): Promise<T> => fn(sm.view),
    propose: async (op: MetadataOp) => apply(op)
  } as unknown as MetadataService
  const methods = s3KeyMethods({ metadata, caller: async (p) => ({ peer: p, member: false, user: sm.user(p) }) })
  const call = async (name: string, raw: unknown, caller: string): Promise<any> => {
    const m = methods.find((x) => x.name === name)
    if (m == null || m.kind !== 'unary') throw new Error(`no ${name}`)
    return await m.handle({ peer: caller, params: m.params(raw), signal: new AbortController().signal })
  }
  return { call, apply, sm, admin }
}

async function fails (p: Promise<unknown>, name: string): Promise<void> {
  try {
    await p
  } catch (err) {
    assert.is((err as Error).name, name)
    return
  }
  assert.unreachable(`expected ${name}`)
}

test('new ids and secrets have their forms and differ', () => {
  const ids = new Set(Array.from({ length: 200 }, newAccessKeyId))
  const secrets = new Set(Array.from({ length: 200 }, newSecretAccessKey))
  assert.is(ids.size, 200)
  assert.is(secrets.size, 200)
  for (const id of ids) assert.ok(S3_ACCESS_KEY_ID_PATTERN.test(id), id)
  for (const s of secrets) assert.ok(S3_SECRET_KEY_PATTERN.test(s), s)
})

test('create for oneself or a user, list without secrets, revoke; a peer without a role gets no key', async () => {
  const { call, apply, sm, admin } = await node()
  const user = await peer()
  apply({ type: 'SetRole', peer: user, role: 'user' })
  const mine = await call('s3.key.create', {}, admin)
  assert.is(mine.user, admin)
  assert.ok(S3_SECRET_KEY_PATTERN.test(mine.secretAccessKey))
  const theirs = await call('s3.key.create', { user }, admin)
  assert.is(theirs.user, user)
  assert.is(sm.s3Key(theirs.accessKeyId)?.secretAccessKey, theirs.secretAccessKey, 'the cluster keeps the secret SigV4 needs')
  const list = await call('s3.key.list', {}, admin)
  assert.equal(list.keys.map((k: any) => k.accessKeyId), [mine.accessKeyId, theirs.accessKeyId].sort())
  assert.not.ok(JSON.stringify(list).includes(mine.secretAccessKey), 'a listing carries no secret')
  assert.equal(Object.keys(list.keys[0]).sort(), ['accessKeyId', 'createdAtMs', 'user'])
  await fails(call('s3.key.create', { user: await peer() }, admin), 'NotFound')
  await fails(call('s3.key.create', { user: 'not a peer id' }, admin), 'InvalidArgument')
  assert.equal(await call('s3.key.revoke', { accessKeyId: theirs.accessKeyId }, admin), { accessKeyId: theirs.accessKeyId })
  assert.is(sm.s3Key(theirs.accessKeyId), undefined)
  await fails(call('s3.key.revoke', { accessKeyId: theirs.accessKeyId }, admin), 'NotFound')
  await fails(call('s3.key.revoke', { accessKeyId: 'lower-case' }, admin), 'InvalidArgument')
})

test('a tenant\'s admin manages its tenant\'s users\' keys only; others are PermissionDenied or unseen', async () => {
  const { call, apply, sm, admin } = await node()
  const [tAdmin, tUser, oUser, plain] = [await peer(), await peer(), await peer(), await peer()]
  apply({ type: 'SetRole', peer: tAdmin, role: 'admin', tenant: 'acme' })
  apply({ type: 'SetRole', peer: tUser, role: 'user', tenant: 'acme' })
  apply({ type: 'SetRole', peer: oUser, role: 'user', tenant: 'other' })
  apply({ type: 'SetRole', peer: plain, role: 'user' })
  const own = await call('s3.key.create', { user: tUser }, tAdmin)
  await fails(call('s3.key.create', { user: oUser }, tAdmin), 'PermissionDenied')
  await fails(call('s3.key.create', { user: admin }, tAdmin), 'PermissionDenied')
  const other = await call('s3.key.create', { user: oUser }, admin)
  assert.equal((await call('s3.key.list', {}, tAdmin)).keys.map((k: any) => k.accessKeyId), [own.accessKeyId])
  assert.is((await call('s3.key.list', {}, admin)).keys.length, 2)
  await fails(call('s3.key.revoke', { accessKeyId: other.accessKeyId }, tAdmin), 'NotFound')
  assert.ok(sm.s3Key(other.accessKeyId) !== undefined, 'a refused revocation changed nothing')
  await fails(call('s3.key.list', {}, plain), 'PermissionDenied')
  await call('s3.key.revoke', { accessKeyId: own.accessKeyId }, tAdmin)
  assert.is(sm.s3Key(own.accessKeyId), undefined)
})

test.run()
