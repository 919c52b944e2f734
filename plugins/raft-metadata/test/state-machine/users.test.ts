import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import type { MetadataResult } from '@dfs/api'
import { MetadataStateMachine } from '../../src/state-machine/index.js'
import { member } from './fixtures.js'

const test = suite('state machine: users')

const KEY = { publicKey: 'A'.repeat(43), privateKey: 'MC4CAQAwBQYDK2VwBCIEI' + 'b'.repeat(43) }

function cluster (): { sm: MetadataStateMachine, next: () => number } {
  const sm = new MetadataStateMachine()
  let index = 0
  const next = (): number => ++index
  assert.ok(sm.apply({ type: 'InitCluster', clusterId: 'c1', createdAtMs: 1, admin: 'root', member: member('n1') }, next()).ok)
  return { sm, next }
}

function errorName (r: MetadataResult): string | undefined {
  return r.ok ? undefined : r.error.name
}

test('InitCluster makes its admin a cluster-wide admin; role() and user() agree', () => {
  const { sm } = cluster()
  assert.equal(sm.user('root'), { id: 'root', role: 'admin', tenant: null })
  assert.is(sm.role('root'), 'admin')
  assert.equal(sm.view.users(), [{ id: 'root', role: 'admin', tenant: null }])
})

test('SetRole grants within a tenant, cluster-wide with tenant null or absent; users() is sorted', () => {
  const { sm, next } = cluster()
  assert.ok(sm.apply({ type: 'SetRole', peer: 'zed', role: 'user', tenant: 'acme' }, next()).ok)
  assert.ok(sm.apply({ type: 'SetRole', peer: 'bob', role: 'readonly', tenant: null }, next()).ok)
  assert.ok(sm.apply({ type: 'SetRole', peer: 'amy', role: 'admin' }, next()).ok)
  assert.equal(sm.users(), [
    { id: 'amy', role: 'admin', tenant: null },
    { id: 'bob', role: 'readonly', tenant: null },
    { id: 'root', role: 'admin', tenant: null },
    { id: 'zed', role: 'user', tenant: 'acme' }
  ])
  assert.is(sm.role('zed'), 'user')
  // a grant to a tenant does not need the tenant to exist here (tenants live in data groups)
  assert.ok(sm.apply({ type: 'SetRole', peer: 'zed', role: 'admin', tenant: 'nowhere' }, next()).ok)
  assert.equal(sm.user('zed'), { id: 'zed', role: 'admin', tenant: 'nowhere' })
})

test('a malformed tenant name is InvalidArgument and changes nothing', () => {
  const { sm, next } = cluster()
  const before = sm.users()
  for (const tenant of ['Acme', '-x', '', 'a'.repeat(64), 'a/b', 7, '\u0001acme']) {
    const r = sm.apply({ type: 'SetRole', peer: 'bob', role: 'user', tenant } as any, next())
    assert.is(errorName(r), 'InvalidArgument', String(tenant))
  }
  assert.equal(sm.users(), before)
})

test('the last cluster-wide admin cannot be revoked, demoted or bound to a tenant', () => {
  const { sm, next } = cluster()
  sm.apply({ type: 'SetRole', peer: 't-admin', role: 'admin', tenant: 'acme' }, next()) // a tenant admin does not count
  for (const op of [
    { type: 'SetRole', peer: 'root', role: null },
    { type: 'SetRole', peer: 'root', role: 'user' },
    { type: 'SetRole', peer: 'root', role: 'admin', tenant: 'acme' }
  ] as const) {
    const r = sm.apply(op, next())
    assert.is(errorName(r), 'FailedPrecondition', JSON.stringify(op))
    assert.equal(sm.user('root'), { id: 'root', role: 'admin', tenant: null })
  }
  // re-granting the same cluster-wide admin is fine
  assert.ok(sm.apply({ type: 'SetRole', peer: 'root', role: 'admin', tenant: null }, next()).ok)
  // with a second cluster-wide admin, the first may go
  assert.ok(sm.apply({ type: 'SetRole', peer: 'amy', role: 'admin' }, next()).ok)
  assert.ok(sm.apply({ type: 'SetRole', peer: 'root', role: null }, next()).ok)
  assert.is(sm.user('root'), undefined)
  assert.is(errorName(sm.apply({ type: 'SetRole', peer: 'amy', role: 'readonly' }, next())), 'FailedPrecondition')
  assert.is(errorName(sm.apply({ type: 'SetRole', peer: 'root', role: null }, next())), 'NotFound')
})

test('cluster key: set at InitCluster or once by SetClusterKey; malformed keys refused', () => {
  const withKey = new MetadataStateMachine()
  assert.ok(withKey.apply({ type: 'InitCluster', clusterId: 'c1', createdAtMs: 1, admin: 'root', member: member('n1'), clusterKey: KEY }, 1).ok)
  assert.equal(withKey.clusterKey(), KEY)
  assert.is(withKey.cluster()?.publicKey, KEY.publicKey)
  assert.is(errorName(withKey.apply({ type: 'SetClusterKey', clusterKey: KEY }, 2)), 'AlreadyExists')

  const { sm, next } = cluster()
  assert.is(sm.clusterKey(), undefined)
  assert.is(sm.cluster()?.publicKey, undefined)
  for (const bad of [
    { ...KEY, publicKey: 'A'.repeat(42) },
    { ...KEY, publicKey: 'A'.repeat(42) + '=' },
    { ...KEY, privateKey: 'not base64url!' },
    { ...KEY, privateKey: 'a'.repeat(5000) },
    { publicKey: KEY.publicKey },
    null
  ]) {
    assert.is(errorName(sm.apply({ type: 'SetClusterKey', clusterKey: bad } as any, next())), 'InvalidArgument', JSON.stringify(bad))
    assert.is(sm.clusterKey(), undefined)
  }
  const badInit = new MetadataStateMachine()
  assert.is(errorName(badInit.apply({ type: 'InitCluster', clusterId: 'c1', createdAtMs: 1, admin: 'root', member: member('n1'), clusterKey: { publicKey: 'x', privateKey: 'y' } }, 1)), 'InvalidArgument')
  assert.is(badInit.cluster(), undefined)
  assert.ok(sm.apply({ type: 'SetClusterKey', clusterKey: KEY }, next()).ok)
  assert.equal(sm.clusterKey(), KEY)
  assert.is(sm.cluster()?.clusterId, 'c1')
  assert.is(sm.cluster()?.publicKey, KEY.publicKey)
  assert.is(errorName(sm.apply({ type: 'SetClusterKey', clusterKey: { ...KEY, publicKey: 'B'.repeat(43) } }, next())), 'AlreadyExists')
  assert.equal(sm.clusterKey(), KEY)
  const restored = MetadataStateMachine.restore(sm.snapshot())
  assert.equal(restored.clusterKey(), KEY)
  assert.equal(restored.cluster(), sm.cluster())
  assert.is(errorName(new MetadataStateMachine().apply({ type: 'SetClusterKey', clusterKey: KEY }, 1)), 'NotFound')
})

test('users with tenants and the cluster key survive snapshot and restore', () => {
  const { sm, next } = cluster()
  sm.apply({ type: 'SetRole', peer: 'zed', role: 'user', tenant: 'acme' }, next())
  sm.apply({ type: 'SetClusterKey', clusterKey: KEY }, next())
  const restored = MetadataStateMachine.restore(sm.snapshot())
  assert.equal(restored.users(), sm.users())
  assert.equal(restored.clusterKey(), KEY)
  assert.ok(Buffer.from(restored.snapshot()).equals(Buffer.from(sm.snapshot())))
})

test.run()
