import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'
import { stat } from 'node:fs/promises'
import { InvalidArgumentError, type PutResult } from '@dfs/api'
import { ClientCommand } from '../../cli/base-command.js'
import { tuneHeapForStreaming } from '../../cli/heap.js'
import { Progress, formatBytes } from '../../cli/progress.js'
import { putFile } from '../../client/files.js'

/** `--meta k=v` flags as a map (the node checks keys and values); a key given twice is refused. */
export function parseMetaFlags (pairs: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (const pair of pairs) {
    const at = pair.indexOf('=')
    if (at <= 0) throw new InvalidArgumentError(`--meta takes KEY=VALUE, not ${JSON.stringify(pair.slice(0, 64))}`, { meta: pair.slice(0, 64) })
    const key = pair.slice(0, at)
    if (Object.hasOwn(out, key)) throw new InvalidArgumentError(`--meta ${key} is given twice`, { key })
    out[key] = pair.slice(at + 1)
  }
  return out
}

export default class FsPut extends ClientCommand<PutResult> {
  static override summary = 'Store a local file at a path in dfs (replacing any file there atomically)'
  static override examples = [
    '<%= config.bin %> fs put ./a.pdf /docs/a.pdf --content-type application/pdf --meta author=ann --meta rev=3'
  ]

  static override args = {
    local: Args.string({ required: true, description: 'local file to read' }),
    remote: Args.string({ required: true, description: 'dfs path to write, e.g. /docs/a.bin' })
  }

  static override flags = {
    sync: Flags.string({
      description: 'acknowledge once a majority of the copies (quorum) or every copy (all) is durable; copies that miss a quorum write are completed in the background',
      options: ['quorum', 'all'],
      default: 'quorum'
    }),
    'content-type': Flags.string({ description: 'MIME type kept with the file (shown by fs stat, served by S3)' }),
    meta: Flags.string({ description: 'user metadata KEY=VALUE kept with the file (repeatable; keys: lower-case letters, digits, _ . -)', multiple: true }),
    md5: Flags.boolean({ description: 'have the node compute the MD5 of the bytes and keep it as the file\'s etag', default: false }),
    tenant: Flags.string({ description: 'act in this tenant\'s namespace (cluster-wide admins; others act in their own)' })
  }

  async run (): Promise<PutResult> {
    const { args, flags } = await this.parse(FsPut)
    tuneHeapForStreaming()
    const meta = parseMetaFlags(flags.meta ?? [])
    const client = await this.client(flags)
    const size = (await stat(args.local).catch(() => undefined))?.size ?? 0
    const progress = new Progress('put', size, { json: this.jsonEnabled() })
    const r = await putFile(client, args.local, args.remote, (n) => { progress.add(n) }, {
      sync: flags.sync as 'quorum' | 'all',
      ...(flags.tenant != null ? { tenant: flags.tenant } : {}),
      ...(flags['content-type'] != null ? { contentType: flags['content-type'] } : {}),
      ...(Object.keys(meta).length > 0 ? { meta } : {}),
      ...(flags.md5 ? { md5: true as const } : {})
    })
    progress.finish()
    this.say(`${r.path}  ${formatBytes(r.size)} in ${r.extents} extent${r.extents === 1 ? '' : 's'}${r.etag != null ? `  etag ${r.etag}` : ''}`)
    return { path: r.path, size: r.size, extents: r.extents, ...(r.etag != null ? { etag: r.etag } : {}) }
  }
}
