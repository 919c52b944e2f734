import { randomBytes } from 'node:crypto'
import {
  InvalidArgumentError, NotFoundError, PermissionDeniedError, S3_ACCESS_KEY_ID_PATTERN,
  type MetadataService, type S3KeyCreated, type S3KeyInfo, type S3KeyRecord, type UserRecord
} from '@dfs/api'
import { Action, isClusterAdmin, type Caller } from '../../security/index.js'
import { record, text } from './params.js'
import { requirePeerId } from './users.js'
import { defineMethod } from '../../net/rpc/define-method.js'
import type { RpcMethod } from '../../net/rpc/types.js'

export interface S3KeyMethodsInit {
  metadata: MetadataService
  /** Who a peer is (Security.caller). */
  caller: (peer: string) => Promise<Caller>
}

/** 32 letters and digits (base32's alphabet): a random byte's low 5 bits pick one without bias. */
const ID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'

/** A new access key id: `DFS` and 17 random characters (85 bits), S3_ACCESS_KEY_ID_PATTERN. */
export function newAccessKeyId (): string {
  const bytes = randomBytes(17)
  let id = 'DFS'
  for (const b of bytes) id += ID_ALPHABET[b & 31]
  return id
}

/** A new secret access key: 30 random bytes in base64, 40 characters without padding (S3_SECRET_KEY_PATTERN). */
export function newSecretAccessKey (): string {
  return randomBytes(30).toString('base64')
}

/**
 * Whose keys a key administrator manages: every user's (a cluster-wide admin) or its tenant's users'
 * (a tenant's admin). The same scoping as `user.*` (users.ts). Authorization let only admins through.
 */
function keyScope (caller: Caller): { all: true } | { all: false, tenant: string } {
  if (isClusterAdmin(caller.user)) return { all: true }
  const tenant = caller.user?.tenant
  if (caller.user?.role !== 'admin' || tenant == null) {
    throw new PermissionDeniedError(`peer ${caller.peer} does not administer users`, { peer: caller.peer })
  }
  return { all: false, tenant }
}

function manages (scope: ReturnType<typeof keyScope>, user: UserRecord | undefined): boolean {
  return scope.all || (user !== undefined && user.tenant === scope.tenant)
}

function info (key: S3KeyRecord): S3KeyInfo {
  return { accessKeyId: key.accessKeyId, user: key.user, createdAtMs: key.createdAtMs }
}

/**
 * `s3.key.create`, `s3.key.list`, `s3.key.revoke` (action `user.admin`): S3 access keys, each acting
 * as one user. A cluster-wide admin manages every user's keys; a tenant's admin those of its
 * tenant's users only. The secret is made here from crypto.randomBytes, stored in the system group
 * (SigV4 needs it on the server), answered once by `create`, and never listed, logged or audited
 * (audit records params, and no params carry it). The gateway reads keys from each node's applied
 * state, so a revocation holds on a node as soon as it applies it.
 */
export function s3KeyMethods (init: S3KeyMethodsInit): RpcMethod[] {
  const SYSTEM = { scope: { system: true } } as const
  return [
    defineMethod('s3.key.create', {
      action: Action.UserAdmin,
      kind: 'unary',
      params: (raw) => {
        const p = record(raw ?? {}, 's3.key.create')
        return p.user == null ? {} : { user: requirePeerId(p, 'user') }
      },
      handle: async ({ peer, params, signal }): Promise<S3KeyCreated> => {
        const scope = keyScope(await init.caller(peer))
        const user = params.user ?? peer
        const target = await init.metadata.read((view) => view.user(user), { ...SYSTEM, signal })
        if (target === undefined) throw new NotFoundError(`${user} has no role: an access key acts as a user`, { user })
        if (!manages(scope, target)) {
          throw new PermissionDeniedError(`the admin of tenant ${scope.all ? '' : scope.tenant} makes keys for its tenant's users only`, { peer, user })
        }
        const key: S3KeyRecord = { accessKeyId: newAccessKeyId(), secretAccessKey: newSecretAccessKey(), user, createdAtMs: Date.now() }
        // the state machine checks again that the user has a role, and refuses a taken id (85 random bits: never in practice)
        await init.metadata.propose({ type: 'PutS3Key', key }, { signal })
        return { accessKeyId: key.accessKeyId, secretAccessKey: key.secretAccessKey, user }
      }
    }),
    defineMethod('s3.key.list', {
      action: Action.UserAdmin,
      kind: 'unary',
      params: (raw) => record(raw ?? {}, 's3.key.list'),
      handle: async ({ peer, signal }) => {
        const scope = keyScope(await init.caller(peer))
        const keys = await init.metadata.read((view) => view.s3Keys().filter((k) => manages(scope, view.user(k.user))), { ...SYSTEM, signal })
        return { keys: keys.map(info) }
      }
    }),
    defineMethod('s3.key.revoke', {
      action: Action.UserAdmin,
      kind: 'unary',
      params: (raw) => {
        const accessKeyId = text(record(raw, 's3.key.revoke'), 'accessKeyId', { max: 64 })
        if (!S3_ACCESS_KEY_ID_PATTERN.test(accessKeyId)) {
          throw new InvalidArgumentError('accessKeyId must be DFS and 17 upper-case letters or digits', { key: 'accessKeyId' })
        }
        return { accessKeyId }
      },
      handle: async ({ peer, params, signal }) => {
        const scope = keyScope(await init.caller(peer))
        const found = await init.metadata.read((view) => {
          const key = view.s3Key(params.accessKeyId)
          return key === undefined ? undefined : { user: key.user, managed: manages(scope, view.user(key.user)) }
        }, { ...SYSTEM, signal })
        // a tenant's admin learns nothing about other tenants' keys
        if (found === undefined || !found.managed) throw new NotFoundError(`no access key ${params.accessKeyId}`, { accessKeyId: params.accessKeyId })
        await init.metadata.propose({ type: 'RevokeS3Key', accessKeyId: params.accessKeyId }, { signal })
        return { accessKeyId: params.accessKeyId }
      }
    })
  ]
}
