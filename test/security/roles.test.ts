import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import type { MetadataService, MetadataView, Role, UserRecord } from '@dfs/api'
import { Action, Security, mayPerform, namespaceOf, type Caller } from '../../src/security/index.js'

const test = suite('security/roles')

const CLIENT_ACTIONS = [Action.FsRead, Action.FsWrite, Action.ClusterRead, Action.ClusterAdmin, Action.UserAdmin, Action.AuditRead]
const NODE_ONLY = [Action.ExtentRead, Action.ExtentWrite, Action.NodePeer]

function user (role: Role, tenant: string | null = null): UserRecord {
  return { id: 'p', role, tenant }
}

/** The actions a caller may perform, of every action the contract names. */
function allowed (c: Pick<Caller, 'member' | 'user'>): string[] {
  return [...CLIENT_ACTIONS, ...NODE_ONLY].filter((a) => mayPerform(c, a))
}

test('the role table: cluster-wide roles', () => {
  assert.equal(allowed({ member: false, user: user('admin') }), CLIENT_ACTIONS)
  assert.equal(allowed({ member: false, user: user('user') }), [Action.FsRead, Action.FsWrite, Action.ClusterRead])
  assert.equal(allowed({ member: false, user: user('readonly') }), [Action.FsRead, Action.ClusterRead])
})

test('the role table: roles within a tenant never include cluster administration', () => {
  assert.equal(allowed({ member: false, user: user('admin', 'acme') }),
    [Action.FsRead, Action.FsWrite, Action.ClusterRead, Action.UserAdmin, Action.AuditRead])
  assert.equal(allowed({ member: false, user: user('user', 'acme') }), [Action.FsRead, Action.FsWrite, Action.ClusterRead])
  assert.equal(allowed({ member: false, user: user('readonly', 'acme') }), [Action.FsRead, Action.ClusterRead])
})

test('a member\'s key is not a user: node actions only, unless granted a role (then the union)', () => {
  assert.equal(allowed({ member: true, user: undefined }), NODE_ONLY)
  assert.equal(allowed({ member: true, user: user('readonly') }), [Action.FsRead, Action.ClusterRead, ...NODE_ONLY])
  assert.equal(allowed({ member: false, user: undefined }), [])
  // joining is open to anyone (the token is the authorization)
  assert.ok(mayPerform({ member: false, user: undefined }, Action.ClusterJoin))
})

const denied = (fn: () => unknown, name: string): void => {
  try {
    fn()
    assert.unreachable(`expected ${name}`)
  } catch (err: any) {
    assert.is(err.name, name)
  }
}

test('namespaces: a tenant\'s user acts in its tenant; only a cluster-wide admin names another', () => {
  const tenantUser = { peer: 'p', user: user('user', 'acme') }
  assert.is(namespaceOf(tenantUser, undefined), 'acme')
  assert.is(namespaceOf(tenantUser, 'acme'), 'acme')
  denied(() => namespaceOf(tenantUser, 'other'), 'PermissionDenied')
  assert.is(namespaceOf({ peer: 'p', user: user('admin') }, undefined), null)
  assert.is(namespaceOf({ peer: 'p', user: user('admin') }, 'acme'), 'acme')
  denied(() => namespaceOf({ peer: 'p', user: user('user') }, 'acme'), 'PermissionDenied')
  denied(() => namespaceOf({ peer: 'p', user: user('readonly') }, 'acme'), 'PermissionDenied')
  denied(() => namespaceOf({ peer: 'p', user: user('admin', 'acme') }, 'other'), 'PermissionDenied')
  denied(() => namespaceOf({ peer: 'p', user: user('admin') }, 'Bad\u0001name'), 'InvalidArgument')
})

/** A metadata service whose applied state is `state` (changed in place by the test). */
function applied (state: { members: string[], users: Map<string, UserRecord>, tenants: Set<string> }): MetadataService {
  const view = {
    members: () => state.members.map((id) => ({ id, name: id, region: 'default', addrs: [] })),
    user: (peer: string) => state.users.get(peer),
    tenant: (name: string) => state.tenants.has(name) ? { name, quotaBytes: null, quotaFiles: null, requestRate: null, usedBytes: 0, usedFiles: 0 } : undefined
  } as unknown as MetadataView
  return { staleRead: <T>(fn: (v: MetadataView) => T): T => fn(view) } as unknown as MetadataService
}

test('Security authorizes from the node\'s applied state: a grant or revocation counts as soon as it is applied', async () => {
  const state = { members: ['m1'], users: new Map<string, UserRecord>(), tenants: new Set(['acme']) }
  const security = new Security({ nodeId: 'self', metadata: applied(state) })
  const refused = async (peer: string, action: string): Promise<string | undefined> =>
    await security.authorize(peer, action).then(() => undefined, (err: Error) => err.name)
  assert.is(await refused('self', Action.ExtentWrite), undefined)
  assert.is(await refused('self', Action.FsRead), 'PermissionDenied', 'not even this node\'s own key is a user')
  assert.is(await refused('m1', Action.NodePeer), undefined)
  assert.is(await refused('m1', Action.ClusterRead), 'PermissionDenied')
  assert.is(await refused('u1', Action.FsRead), 'PermissionDenied')
  state.users.set('u1', { id: 'u1', role: 'readonly', tenant: null })
  assert.is(await refused('u1', Action.FsRead), undefined)
  assert.is(await refused('u1', Action.FsWrite), 'PermissionDenied')
  assert.is(await refused('u1', Action.ExtentRead), 'PermissionDenied', 'a user is not a node')
  state.users.delete('u1')
  assert.is(await refused('u1', Action.FsRead), 'PermissionDenied')
  assert.is(await security.roleOf('m1'), 'node')
  assert.is(await security.roleOf('u1'), undefined)

  state.users.set('a1', { id: 'a1', role: 'admin', tenant: null })
  assert.is(await security.namespace('a1', 'acme'), 'acme')
  assert.is(await security.namespace('a1', 'nope').catch((err: Error) => err.name), 'NotFound')
})

test.run()
