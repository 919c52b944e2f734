import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'
import type { DirResult } from '@dfs/api'
import { ClientCommand } from '../../cli/base-command.js'

export default class FsRmdir extends ClientCommand<DirResult> {
  static override summary = 'Remove an empty directory'
  static override description = 'A directory that still has entries is DirectoryNotEmpty; no directory at PATH is NotFound.'
  static override args = {
    path: Args.string({ required: true, description: 'dfs path of the directory' })
  }

  static override flags = {
    tenant: Flags.string({ description: 'act in this tenant\'s namespace (cluster-wide admins; others act in their own)' })
  }

  async run (): Promise<DirResult> {
    const { args, flags } = await this.parse(FsRmdir)
    const client = await this.client(flags)
    const r = await client.call('fs.rmdir', { path: args.path, ...(flags.tenant != null ? { tenant: flags.tenant } : {}) })
    this.say(`removed ${r.path}`)
    return { path: r.path }
  }
}
