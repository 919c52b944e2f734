import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'
import type { RemoveResult } from '@dfs/api'
import { ClientCommand } from '../../cli/base-command.js'

export default class FsRm extends ClientCommand<RemoveResult> {
  static override summary = 'Remove a file and free its extents'
  static override args = {
    path: Args.string({ required: true, description: 'dfs path' })
  }

  static override flags = {
    tenant: Flags.string({ description: 'act in this tenant\'s namespace (cluster-wide admins; others act in their own)' })
  }

  async run (): Promise<RemoveResult> {
    const { args, flags } = await this.parse(FsRm)
    const client = await this.client(flags)
    const r = await client.call('fs.rm', { path: args.path, ...(flags.tenant != null ? { tenant: flags.tenant } : {}) })
    this.say(`removed ${r.path}`)
    return r
  }
}
