import { Args } from '@oclif/core'
import { ClientCommand } from '../../cli/base-command.js'
import { formatBytes } from '../../cli/progress.js'
import type { StatResult } from '../../node/files.js'

interface StatJson {
  path: string
  size: number
  version: number
  mtimeMs: number
  extents: Array<{ id: string, size: number, checksum: string, replicas: string[] }>
}

export default class FsStat extends ClientCommand<StatJson> {
  static override summary = 'Show a file: size, version and its extents with their checksums and replicas'
  static override args = {
    path: Args.string({ required: true, description: 'dfs path' })
  }

  async run (): Promise<StatJson> {
    const { args, flags } = await this.parse(FsStat)
    const client = await this.client(flags)
    const s = await client.call<StatResult>('fs.stat', { path: args.path })
    this.say(`path     ${s.path}\nsize     ${s.size} (${formatBytes(s.size)})\nversion  ${s.version}\nmodified ${new Date(s.mtimeMs).toISOString()}\nextents  ${s.extents.length}`)
    for (const e of s.extents) this.say(`  ${e.id}  ${String(e.size).padStart(8)}  ${e.checksum.slice(0, 23)}…  ${e.replicas.join(',')}`)
    return {
      path: s.path,
      size: s.size,
      version: s.version,
      mtimeMs: s.mtimeMs,
      extents: s.extents.map((e) => ({ id: e.id, size: e.size, checksum: e.checksum, replicas: e.replicas }))
    }
  }
}
