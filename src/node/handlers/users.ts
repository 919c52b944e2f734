import { peerIdFromString } from '@libp2p/peer-id'
import {
  InvalidArgumentError, NotFoundError, PermissionDeniedError, requireTenantName, tenantRootPath,
  type MetadataService, type Role, type UserRecord
} from '@dfs/api'
import { Action, isClusterAdmin, type Caller } from '../../security/index.js'
import { record, text } from './params.js'
import { defineMethod } from '../../net/rpc/define-method.js'
import type { RpcMethod } from '../../net/rpc/types.js'

const ROLES: readonly Role[] = ['admin', 'user', 'readonly']

export interface UserMethodsInit {
  metadata: MetadataService
  /** Who a peer is (Security.caller). */
  caller: (peer: string) => Promise<Caller>
}

/** A PeerId a caller names, in its canonical form (InvalidArgument when it is not one). */
export function requirePeerId (params: Record<string, unknown>, key: string): string {
  const value = text(params, key, { max: 128 })
  try {
    return peerIdFromString(value).toString()
  } catch {
    throw new InvalidArgumentError(`${key} is not a PeerId`, { key, value: value.slice(0, 80) })
  }
}

/**
 * The tenant a user administrator acts in: null for a cluster-wide admin (any tenant), the tenant
 * of a tenant admin. Authorization let only admins through (`user.admin`).
 */
function adminScope (caller: Caller): { all: true } | { all: false, tenant: string } {
  if (isClusterAdmin(caller.user)) return { all: true }
  const tenant = caller.user?.tenant
  if (caller.user?.role !== 'admin' || tenant == null) {
    throw new PermissionDeniedError(`peer ${caller.peer} does not administer users`, { peer: caller.peer })
  }
  return { all: false, tenant }
}

/** A tenant admin may touch only users of its own tenant. */
function requireManages (caller: Caller, scope: ReturnType<typeof adminScope>, target: UserRecord | undefined): void {
  if (scope.all || target === undefined || target.tenant === scope.tenant) return
  throw new PermissionDeniedError(`the admin of tenant ${scope.tenant} manages only its tenant's users`,
    { peer: caller.peer, tenant: scope.tenant, user: target.id })
}

/**
 * `user.grant`, `user.revoke`, `user.list` (action `user.admin`): a cluster-wide admin manages every
 * user; a tenant's admin grants roles within its tenant only (never cluster-wide), revokes and lists
 * only its tenant's users. Grants live in the system group; every node authorizes from what it has
 * applied, so a change takes effect on each node as it applies it.
 */
export function userMethods (init: UserMethodsInit): RpcMethod[] {
  const SYSTEM = { scope: { system: true } } as const
  return [
    defineMethod('user.grant', {
      action: Action.UserAdmin,
      kind: 'unary',
      params: (raw) => {
        const p = record(raw, 'user.grant')
        const role = p.role
        if (typeof role !== 'string' || !(ROLES as readonly string[]).includes(role)) {
          throw new InvalidArgumentError(`role must be one of ${ROLES.join(', ')}`, { role: typeof role === 'string' ? role.slice(0, 32) : typeof role })
        }
        const tenant = p.tenant == null ? undefined : requireTenantName(p.tenant)
        return { id: requirePeerId(p, 'id'), role: role as Role, tenant }
      },
      handle: async ({ peer, params, signal }): Promise<UserRecord> => {
        const caller = await init.caller(peer)
        const scope = adminScope(caller)
        const tenant = params.tenant ?? (scope.all ? null : scope.tenant)
        if (!scope.all && tenant !== scope.tenant) {
          throw new PermissionDeniedError(`the admin of tenant ${scope.tenant} grants roles in its tenant only`,
            { peer, tenant: scope.tenant, requested: tenant })
        }
        const target = await init.metadata.read((view) => view.user(params.id), { ...SYSTEM, signal })
        requireManages(caller, scope, target)
        if (tenant !== null) {
          const exists = await init.metadata.read((view) => view.tenant(tenant) !== undefined, { signal, scope: { paths: [tenantRootPath(tenant)] } })
          if (!exists) throw new NotFoundError(`no tenant ${tenant}`, { tenant })
        }
        await init.metadata.propose({ type: 'SetRole', peer: params.id, role: params.role, tenant }, { signal })
        return { id: params.id, role: params.role, tenant }
      }
    }),
    defineMethod('user.revoke', {
      action: Action.UserAdmin,
      kind: 'unary',
      params: (raw) => ({ id: requirePeerId(record(raw, 'user.revoke'), 'id') }),
      handle: async ({ peer, params, signal }) => {
        const caller = await init.caller(peer)
        const scope = adminScope(caller)
        const target = await init.metadata.read((view) => view.user(params.id), { ...SYSTEM, signal })
        if (target === undefined) throw new NotFoundError(`${params.id} has no role`, { id: params.id })
        requireManages(caller, scope, target)
        // the state machine refuses to revoke the last cluster-wide admin (FailedPrecondition)
        await init.metadata.propose({ type: 'SetRole', peer: params.id, role: null }, { signal })
        return { id: params.id }
      }
    }),
    defineMethod('user.list', {
      action: Action.UserAdmin,
      kind: 'unary',
      params: (raw) => record(raw ?? {}, 'user.list'),
      handle: async ({ peer, signal }) => {
        const scope = adminScope(await init.caller(peer))
        const users = await init.metadata.read((view) => view.users(), { ...SYSTEM, signal })
        return { users: scope.all ? users : users.filter((u) => u.tenant === scope.tenant) }
      }
    })
  ]
}
