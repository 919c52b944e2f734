import { Args, Flags } from '@oclif/core'
import { stat } from 'node:fs/promises'
import { ClientCommand } from '../../cli/base-command.js'
import { Progress, formatBytes } from '../../cli/progress.js'
import type { PutResult } from '@dfs/api'
import { putFile } from '../../client/files.js'

export default class FsPut extends ClientCommand<PutResult> {
  static override summary = 'Store a local file at a path in dfs (replacing any file there atomically)'
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
    tenant: Flags.string({ description: 'act in this tenant\'s namespace (cluster-wide admins; others act in their own)' })
  }

  async run (): Promise<PutResult> {
    const { args, flags } = await this.parse(FsPut)
    const client = await this.client(flags)
    const size = (await stat(args.local).catch(() => undefined))?.size ?? 0
    const progress = new Progress('put', size, { json: this.jsonEnabled() })
    const r = await putFile(client, args.local, args.remote, (n) => { progress.add(n) }, { sync: flags.sync as 'quorum' | 'all', tenant: flags.tenant })
    progress.finish()
    this.say(`${r.path}  ${formatBytes(r.size)} in ${r.extents} extent${r.extents === 1 ? '' : 's'}`)
    return { path: r.path, size: r.size, extents: r.extents }
  }
}
