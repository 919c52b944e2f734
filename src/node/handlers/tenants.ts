import {
  InvalidArgumentError, NotFoundError, requireTenantName, tenantRootPath, type MetadataService, type TenantRecord
} from '@dfs/api'
import { Action } from '../../security/index.js'
import { record } from './params.js'
import { defineMethod } from '../../net/rpc/define-method.js'
import type { RpcMethod } from '../../net/rpc/types.js'

/** Highest per-user request rate a tenant may set (requests per second on one node). */
export const TENANT_REQUEST_RATE_MAX = 1_000_000

/** A limit as sent: absent (undefined: unchanged), null (no limit), or an integer in min..max. */
function limit (p: Record<string, unknown>, key: string, min: number, max: number): number | null | undefined {
  const v = p[key]
  if (v === undefined || v === null) return v
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
    throw new InvalidArgumentError(`${key} must be an integer in ${min}..${max}, or null for none`, { key })
  }
  return v
}

function tenantParams (raw: unknown, method: string): { name: string, quotaBytes?: number | null, quotaFiles?: number | null, requestRate?: number | null } {
  const p = record(raw, method)
  return {
    name: requireTenantName(p.name),
    quotaBytes: limit(p, 'quotaBytes', 0, Number.MAX_SAFE_INTEGER),
    quotaFiles: limit(p, 'quotaFiles', 0, Number.MAX_SAFE_INTEGER),
    requestRate: limit(p, 'requestRate', 1, TENANT_REQUEST_RATE_MAX)
  }
}

/**
 * `tenant.create`, `tenant.set`, `tenant.list`, `tenant.remove` (action `cluster.admin`: cluster-wide
 * admins only; a tenant's admin does not hold it). A tenant's record and usage live in the data group
 * of its root path, which the state machine checks quotas and emptiness in.
 */
export function tenantMethods (init: { metadata: MetadataService }): RpcMethod[] {
  const scopeOf = (name: string): { scope: { paths: string[] } } => ({ scope: { paths: [tenantRootPath(name)] } })
  return [
    defineMethod('tenant.create', {
      action: Action.ClusterAdmin,
      kind: 'unary',
      params: (raw) => tenantParams(raw, 'tenant.create'),
      handle: async ({ params, signal }): Promise<TenantRecord> => {
        const tenant: TenantRecord = {
          name: params.name,
          quotaBytes: params.quotaBytes ?? null,
          quotaFiles: params.quotaFiles ?? null,
          requestRate: params.requestRate ?? null
        }
        await init.metadata.propose({ type: 'PutTenant', tenant, create: true }, { signal })
        return tenant
      }
    }),
    defineMethod('tenant.set', {
      action: Action.ClusterAdmin,
      kind: 'unary',
      params: (raw) => tenantParams(raw, 'tenant.set'),
      handle: async ({ params, signal }): Promise<TenantRecord> => {
        const old = await init.metadata.read((view) => view.tenant(params.name), { ...scopeOf(params.name), signal })
        if (old === undefined) throw new NotFoundError(`no tenant ${params.name}`, { tenant: params.name })
        const tenant: TenantRecord = {
          name: params.name,
          quotaBytes: params.quotaBytes === undefined ? old.quotaBytes : params.quotaBytes,
          quotaFiles: params.quotaFiles === undefined ? old.quotaFiles : params.quotaFiles,
          requestRate: params.requestRate === undefined ? old.requestRate : params.requestRate
        }
        // a tenant removed meanwhile makes the state machine refuse this (NotFound)
        await init.metadata.propose({ type: 'PutTenant', tenant, create: false }, { signal })
        return tenant
      }
    }),
    defineMethod('tenant.list', {
      action: Action.ClusterAdmin,
      kind: 'unary',
      params: (raw) => record(raw ?? {}, 'tenant.list'),
      handle: async ({ signal }) => ({ tenants: await init.metadata.read((view) => view.tenants(), { signal, scope: { paths: ['/'] } }) })
    }),
    defineMethod('tenant.remove', {
      action: Action.ClusterAdmin,
      kind: 'unary',
      params: (raw) => ({ name: requireTenantName(record(raw, 'tenant.remove').name) }),
      handle: async ({ params, signal }) => {
        // FailedPrecondition from the state machine while the tenant holds files
        await init.metadata.propose({ type: 'RemoveTenant', name: params.name }, { signal })
        return { name: params.name }
      }
    })
  ]
}
