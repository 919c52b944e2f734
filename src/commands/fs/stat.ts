import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'
import type { Consistency } from '@dfs/api'
import { ClientCommand, consistencyFlag } from '../../cli/base-command.js'
import { formatBytes } from '../../cli/progress.js'
import { statFile } from '../../client/files.js'

interface StatJson {
  path: string
  size: number
  version: number
  mtimeMs: number
  extents: Array<{ id: string, size: number, checksum: string, replicas: string[] }>
  consistency: Consistency
  contentType?: string
  etag?: string
  meta?: Record<string, string>
}

export default class FsStat extends ClientCommand<StatJson> {
  static override summary = 'Show a file: size, version, content type, etag, user metadata and its extents with their checksums and replicas'
  static override args = {
    path: Args.string({ required: true, description: 'dfs path' })
  }

  static override flags = {
    consistency: consistencyFlag,
    tenant: Flags.string({ description: 'act in this tenant\'s namespace (cluster-wide admins; others act in their own)' })
  }

  async run (): Promise<StatJson> {
    const { args, flags } = await this.parse(FsStat)
    const client = await this.client(flags)
    // every page of one version (a node that predates the option leaves `consistency` out)
    const s = await statFile(client, args.path, { consistency: flags.consistency, ...(flags.tenant != null ? { tenant: flags.tenant } : {}) })
    const consistency = this.served(s.consistency)
    this.say(`path     ${this.shown(s.path)}\nsize     ${s.size} (${formatBytes(s.size)})\nversion  ${s.version}\nmodified ${new Date(s.mtimeMs).toISOString()}`)
    if (s.contentType != null) this.say(`type     ${this.shown(s.contentType)}`)
    if (s.etag != null) this.say(`etag     ${this.shown(s.etag)}`)
    for (const [k, v] of Object.entries(s.meta ?? {})) this.say(`meta     ${this.shown(k)}=${this.shown(v)}`)
    this.say(`extents  ${s.extents.length}`)
    for (const e of s.extents) this.say(`  ${e.id}  ${String(e.size).padStart(8)}  ${e.checksum.slice(0, 23)}…  ${e.replicas.join(',')}`)
    return {
      path: s.path,
      size: s.size,
      version: s.version,
      mtimeMs: s.mtimeMs,
      extents: s.extents.map((e) => ({ id: e.id, size: e.size, checksum: e.checksum, replicas: e.replicas })),
      consistency,
      ...(s.contentType != null ? { contentType: s.contentType } : {}),
      ...(s.etag != null ? { etag: s.etag } : {}),
      ...(s.meta != null ? { meta: s.meta } : {})
    }
  }
}
