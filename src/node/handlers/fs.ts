import { CONSISTENCY_DEFAULT, CONSISTENCY_LEVELS, InvalidArgumentError, type FsPutParams } from '@dfs/api'
import { Action } from '../../security/index.js'
import { LIST_PAGE_MAX, type FileService } from '../files.js'
import { integer, oneOf, record, text } from './params.js'
import { defineMethod } from '../../net/rpc/define-method.js'
import type { RpcMethod } from '../../net/rpc/types.js'

/**
 * The file RPCs: `fs.put` (upload), `fs.get` (download), `fs.ls`, `fs.stat`, `fs.rm`. The reads take
 * `consistency` (Consistency: `linearizable`, the default, or `stale`) and answer with the one served.
 */
export function fsMethods (files: FileService): RpcMethod[] {
  const pathOnly = (method: string) => (raw: unknown) => ({ path: text(record(raw, method), 'path', {}) })
  const read = (method: string) => (raw: unknown) => {
    const p = record(raw, method)
    return { path: text(p, 'path', {}), consistency: oneOf(p, 'consistency', CONSISTENCY_LEVELS, CONSISTENCY_DEFAULT) }
  }
  return [
    defineMethod('fs.put', {
      action: Action.FsWrite,
      kind: 'upload',
      params: (raw): FsPutParams => {
        const p = record(raw, 'fs.put')
        const sync = p.sync ?? 'quorum'
        // eslint-disable-next-line @typescript-eslint/no-base-to-string -- echoes untrusted input, whatever its type
        if (sync !== 'quorum' && sync !== 'all') throw new InvalidArgumentError('sync must be quorum or all', { sync: String(sync).slice(0, 16) })
        return { path: text(p, 'path', {}), sync }
      },
      handle: async ({ params, body, signal }) => await files.put(params.path, body, { signal, sync: params.sync })
    }),
    defineMethod('fs.get', {
      action: Action.FsRead,
      kind: 'download',
      params: read('fs.get'),
      handle: async ({ params, signal }) => {
        const { stat, body } = await files.open(params.path, { signal, consistency: params.consistency })
        return {
          result: {
            path: stat.path,
            size: stat.size,
            extents: stat.extents.map((e) => ({ id: e.id, size: e.size, checksum: e.checksum })),
            consistency: stat.consistency
          },
          body
        }
      }
    }),
    defineMethod('fs.stat', {
      action: Action.FsRead,
      kind: 'unary',
      params: read('fs.stat'),
      handle: async ({ params, signal }) => await files.stat(params.path, { signal, consistency: params.consistency })
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
      handle: async ({ params, signal }) => await files.list(params.path, { after: params.after, limit: params.limit }, { signal, consistency: params.consistency })
    }),
    defineMethod('fs.rm', {
      action: Action.FsWrite,
      kind: 'unary',
      params: pathOnly('fs.rm'),
      handle: async ({ params, signal }) => await files.remove(params.path, { signal })
    })
  ]
}
