import {
  COMPOSE_PARTS_MAX, CONSISTENCY_DEFAULT, CONSISTENCY_LEVELS, DfsError, GET_EXTENTS_MAX, InvalidArgumentError, IsADirectoryError, errorFromWire, fromInternalPath,
  requireFileMeta, tenantRootPath, toInternalPath,
  type CallOptions, type FileMeta, type FsComposeValidated, type FsCopyParams, type FsPutParams, type FsRenameParams, type FsUtimeParams
} from '@dfs/api'
import { Action } from '../../security/index.js'
import { LIST_PAGE_MAX, type FileService } from '../files.js'
import { fileMeta, integer, oneOf, path, paths, record, text } from './params.js'
import { defineMethod } from '../../net/rpc/define-method.js'
import type { RpcMethod } from '../../net/rpc/types.js'

/**
 * The namespace a caller's file call acts in (Security.namespace): its tenant, or null for the
 * default namespace. Throws PermissionDenied for a tenant the caller may not name.
 */
export type NamespaceOf = (peer: string, requested: string | undefined, options?: CallOptions) => Promise<string | null>

/** Every caller in the default namespace (a node without users, or a test). */
const DEFAULT_NAMESPACE: NamespaceOf = async () => null

/** The `tenant` param of every fs.* call (absent: the caller's own namespace), as a part of the validated params. */
function tenantParam (p: Record<string, unknown>): { tenant?: string } {
  const tenant = text(p, 'tenant', { optional: true, max: 64 })
  return tenant === undefined ? {} : { tenant }
}

/**
 * Maps a path inside `tenant`'s namespace back to the one its caller sees: in an error's message and
 * its string details, so no answer names a tenant's internal root.
 */
function clientError (err: unknown, tenant: string | null): unknown {
  if (tenant === null || !(err instanceof DfsError)) return err
  const root = tenantRootPath(tenant)
  const scrub = (s: string): string => s.split(root + '/').join('/').split(root).join('/')
  const details = Object.fromEntries(Object.entries(err.details).map(([k, v]) => [k, typeof v === 'string' ? scrub(v) : v]))
  return errorFromWire({ name: err.name, message: scrub(err.message), details })
}

/** FileMeta of validated params (contentType, user meta, etag), or undefined when they set none. */
function metaOf (p: { contentType?: string, meta?: Record<string, string>, etag?: string }): FileMeta | undefined {
  return requireFileMeta({
    ...(p.contentType !== undefined ? { contentType: p.contentType } : {}),
    ...(p.etag !== undefined ? { etag: p.etag } : {}),
    ...(p.meta !== undefined ? { user: p.meta } : {})
  })
}

/** The client's path of an internal one (in `tenant`'s namespace). */
function clientPathOf (internal: string): string {
  return fromInternalPath(internal).path
}

/**
 * The file RPCs: `fs.put` and `fs.put.encoded` (uploads), `fs.get` (download), `fs.ls`, `fs.stat`, `fs.rm`, `fs.mv`, `fs.mkdir`, `fs.rmdir`,
 * `fs.compose`. The reads take
 * `consistency` (Consistency: `linearizable`, the default, or `stale`) and answer with the one served.
 *
 * Every path is in the caller's namespace (NamespaceOf): a tenant's user sends and receives paths
 * relative to its tenant's root, which toInternalPath maps to where they live; the default
 * namespace's `/` does not list tenants' roots. Client paths never hold control characters (the
 * `path` check refuses them), so no client path can name a tenant's root (TENANT_MARKER) directly.
 */
export function fsMethods (files: FileService, namespaceOf: NamespaceOf = DEFAULT_NAMESPACE): RpcMethod[] {
  const pathOnly = (method: string) => (raw: unknown) => {
    const p = record(raw, method)
    return { path: path(p, 'path'), ...tenantParam(p) }
  }
  const read = (method: string) => (raw: unknown) => {
    const p = record(raw, method)
    return { path: path(p, 'path'), consistency: oneOf(p, 'consistency', CONSISTENCY_LEVELS, CONSISTENCY_DEFAULT), ...tenantParam(p) }
  }
  /** Runs `fn` with the internal path of the caller's `path`, its errors told in the caller's namespace. */
  const inNamespace = async <T>(peer: string, params: { path: string, tenant?: string }, signal: AbortSignal,
    fn: (internal: string, tenant: string | null) => Promise<T>): Promise<T> => {
    const tenant = await namespaceOf(peer, params.tenant, { signal })
    try {
      return await fn(toInternalPath(tenant, params.path), tenant)
    } catch (err) {
      throw clientError(err, tenant)
    }
  }
  /** `fs.put`, and `fs.put.encoded` (`pieces`): the same params and answer, the body as pieces (extent-pieces.ts). */
  const putMethod = (name: 'fs.put' | 'fs.put.encoded', pieces: boolean): RpcMethod => defineMethod(name, {
    action: Action.FsWrite,
    kind: 'upload',
    params: (raw): FsPutParams => {
      const p = record(raw, name)
      const sync = p.sync ?? 'quorum'
      // eslint-disable-next-line @typescript-eslint/no-base-to-string -- echoes untrusted input, whatever its type
      if (sync !== 'quorum' && sync !== 'all') throw new InvalidArgumentError('sync must be quorum or all', { sync: String(sync).slice(0, 16) })
      const size = integer(p, 'size', { min: 0, max: Number.MAX_SAFE_INTEGER, optional: true })
      const md5 = p.md5
      if (md5 != null && md5 !== true && typeof md5 !== 'string') throw new InvalidArgumentError('md5 must be true or a base64 MD5', { key: 'md5' })
      return {
        path: path(p, 'path'),
        sync,
        ...tenantParam(p),
        ...(size !== undefined ? { size } : {}),
        ...fileMeta(p),
        ...(md5 != null ? { md5: md5 === true ? true : text(p, 'md5', { max: 24 }) } : {})
      }
    },
    handle: async ({ peer, params, body, signal }) => await inNamespace(peer, params, signal, async (internal) => {
      // a namespace's root is a directory, also a tenant's (whose internal path is not `/`)
      if (params.path === '/') throw new IsADirectoryError('/ is a directory', { path: '/' })
      const r = await files.put(internal, body, { signal, sync: params.sync, declaredSize: params.size, meta: metaOf(params), md5: params.md5, pieces })
      return { ...r, path: clientPathOf(r.path) }
    })
  })
  return [
    putMethod('fs.put', false),
    putMethod('fs.put.encoded', true),
    defineMethod('fs.get', {
      action: Action.FsRead,
      kind: 'download',
      params: (raw) => {
        const p = record(raw, 'fs.get')
        const offset = integer(p, 'offset', { min: 0, max: Number.MAX_SAFE_INTEGER, optional: true })
        const length = integer(p, 'length', { min: 0, max: Number.MAX_SAFE_INTEGER, optional: true })
        return { ...read('fs.get')(p), ...(offset !== undefined ? { offset } : {}), ...(length !== undefined ? { length } : {}) }
      },
      handle: async ({ peer, params, signal }) => await inNamespace(peer, params, signal, async (internal) => {
        const { stat, range, body } = await files.open(internal, { signal, consistency: params.consistency, offset: params.offset, length: params.length })
        return {
          result: {
            path: clientPathOf(stat.path),
            size: stat.size,
            mtimeMs: stat.mtimeMs,
            version: stat.version,
            offset: range.offset,
            length: range.length,
            // only the extents the body reads, and at most GET_EXTENTS_MAX of them: the answer fits
            // one frame whatever the file (the node checks every extent it reads: see GetResult)
            extents: stat.extents.slice(range.first, Math.min(range.end, range.first + GET_EXTENTS_MAX)).map((e) => ({ id: e.id, size: e.size, checksum: e.checksum })),
            extentsTotal: range.end - range.first,
            extentsOffset: range.firstOffset,
            consistency: stat.consistency,
            ...(stat.contentType !== undefined ? { contentType: stat.contentType } : {}),
            ...(stat.etag !== undefined ? { etag: stat.etag } : {}),
            ...(stat.meta !== undefined ? { meta: stat.meta } : {})
          },
          body
        }
      })
    }),
    defineMethod('fs.stat', {
      action: Action.FsRead,
      kind: 'unary',
      params: (raw) => {
        const p = record(raw, 'fs.stat')
        const extentsFrom = integer(p, 'extentsFrom', { min: 0, max: Number.MAX_SAFE_INTEGER, optional: true })
        const version = integer(p, 'version', { min: 1, max: Number.MAX_SAFE_INTEGER, optional: true })
        return { ...read('fs.stat')(p), ...(extentsFrom !== undefined ? { extentsFrom } : {}), ...(version !== undefined ? { version } : {}) }
      },
      handle: async ({ peer, params, signal }) => await inNamespace(peer, params, signal, async (internal) => {
        const s = await files.stat(internal, { signal, consistency: params.consistency, extentsFrom: params.extentsFrom, version: params.version })
        return { ...s, path: clientPathOf(s.path) }
      })
    }),
    defineMethod('fs.ls', {
      action: Action.FsRead,
      kind: 'unary',
      params: (raw) => {
        const p = record(raw, 'fs.ls')
        return {
          ...read('fs.ls')(p),
          after: text(p, 'after', { optional: true, max: 255 }),
          limit: integer(p, 'limit', { min: 1, max: LIST_PAGE_MAX, optional: true })
        }
      },
      handle: async ({ peer, params, signal }) => await inNamespace(peer, params, signal, async (internal, tenant) => {
        const r = await files.list(internal, { after: params.after, limit: params.limit, hideTenantRoots: tenant === null },
          { signal, consistency: params.consistency })
        return { ...r, entries: r.entries.map((e) => ({ ...e, path: clientPathOf(e.path) })) }
      })
    }),
    defineMethod('fs.rm', {
      action: Action.FsWrite,
      kind: 'unary',
      params: pathOnly('fs.rm'),
      handle: async ({ peer, params, signal }) => await inNamespace(peer, params, signal, async (internal, tenant) => {
        if (tenant !== null && params.path === '/') throw new IsADirectoryError('/ is a directory', { path: '/' })
        const r = await files.remove(internal, { signal })
        return { ...r, path: clientPathOf(r.path) }
      })
    }),
    defineMethod('fs.mv', {
      action: Action.FsWrite,
      kind: 'unary',
      params: (raw): FsRenameParams => {
        const p = record(raw, 'fs.mv')
        const replace = p.replace ?? true
        if (typeof replace !== 'boolean') throw new InvalidArgumentError('replace must be true or false', { key: 'replace' })
        return { from: path(p, 'from'), to: path(p, 'to'), replace, ...tenantParam(p) }
      },
      handle: async ({ peer, params, signal }) => {
        // a namespace's root is never renamed (a tenant's root is not `/` inside, so say it here)
        if (params.from === '/' || params.to === '/') {
          throw new InvalidArgumentError('/ cannot be renamed, nor anything renamed to it', { from: params.from, to: params.to })
        }
        return await inNamespace(peer, { path: params.from, tenant: params.tenant }, signal, async (from, tenant) => {
          await files.rename(from, toInternalPath(tenant, params.to), { signal, replace: params.replace })
          return { from: params.from, to: params.to }
        })
      }
    }),
    defineMethod('fs.cp', {
      action: Action.FsWrite,
      kind: 'unary',
      params: (raw): FsCopyParams => {
        const p = record(raw, 'fs.cp')
        const replace = p.replace ?? true
        if (typeof replace !== 'boolean') throw new InvalidArgumentError('replace must be true or false', { key: 'replace' })
        const replaceMeta = p.replaceMeta ?? false
        if (typeof replaceMeta !== 'boolean') throw new InvalidArgumentError('replaceMeta must be true or false', { key: 'replaceMeta' })
        return { from: path(p, 'from'), to: path(p, 'to'), replace, replaceMeta, ...tenantParam(p), ...fileMeta(p) }
      },
      handle: async ({ peer, params, signal }) => {
        if (params.from === '/' || params.to === '/') throw new IsADirectoryError('/ is a directory', { path: '/' })
        return await inNamespace(peer, { path: params.from, tenant: params.tenant }, signal, async (from, tenant) => {
          const meta = params.replaceMeta === true ? metaOf(params) ?? {} : metaOf(params)
          const r = await files.copy(from, toInternalPath(tenant, params.to), { signal, replace: params.replace, meta })
          return { ...r, from: params.from, to: params.to }
        })
      }
    }),
    defineMethod('fs.utime', {
      action: Action.FsWrite,
      kind: 'unary',
      params: (raw): FsUtimeParams => {
        const p = record(raw, 'fs.utime')
        return { path: path(p, 'path'), mtimeMs: integer(p, 'mtimeMs', { min: 0, max: Number.MAX_SAFE_INTEGER }) as number, ...tenantParam(p) }
      },
      handle: async ({ peer, params, signal }) => {
        if (params.path === '/') throw new IsADirectoryError('/ is a directory', { path: '/' })
        return await inNamespace(peer, params, signal, async (internal) => {
          const r = await files.setMtime(internal, params.mtimeMs, { signal })
          return { path: params.path, mtimeMs: r.mtimeMs }
        })
      }
    }),
    defineMethod('fs.mkdir', {
      action: Action.FsWrite,
      kind: 'unary',
      params: pathOnly('fs.mkdir'),
      handle: async ({ peer, params, signal }) => {
        // a namespace's root always exists (a tenant's is not `/` inside, so say it here)
        if (params.path === '/') throw new InvalidArgumentError('/ always exists: it cannot be made', { path: '/' })
        return await inNamespace(peer, params, signal, async (internal) => {
          await files.mkdir(internal, { signal })
          return { path: params.path }
        })
      }
    }),
    defineMethod('fs.rmdir', {
      action: Action.FsWrite,
      kind: 'unary',
      params: pathOnly('fs.rmdir'),
      handle: async ({ peer, params, signal }) => {
        if (params.path === '/') throw new InvalidArgumentError('/ cannot be removed', { path: '/' })
        return await inNamespace(peer, params, signal, async (internal) => {
          await files.rmdir(internal, { signal })
          return { path: params.path }
        })
      }
    }),
    defineMethod('fs.compose', {
      action: Action.FsWrite,
      kind: 'unary',
      params: (raw): FsComposeValidated => {
        const p = record(raw, 'fs.compose')
        const replace = p.replace ?? true
        if (typeof replace !== 'boolean') throw new InvalidArgumentError('replace must be true or false', { key: 'replace' })
        const etag = text(p, 'etag', { optional: true, max: 128 })
        if (etag !== undefined) requireFileMeta({ etag }, 'params')
        return {
          path: path(p, 'to'),
          parts: paths(p, 'parts', COMPOSE_PARTS_MAX),
          replace,
          ...tenantParam(p),
          ...fileMeta(p),
          ...(etag !== undefined ? { etag } : {})
        }
      },
      handle: async ({ peer, params, signal }) => {
        if (params.path === '/') throw new IsADirectoryError('/ is a directory', { path: '/' })
        return await inNamespace(peer, params, signal, async (to, tenant) => {
          const parts = params.parts.map((p) => toInternalPath(tenant, p))
          const r = await files.compose(to, parts, { signal, replace: params.replace, meta: metaOf(params) })
          return { ...r, path: params.path }
        })
      }
    })
  ]
}
