import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'
import type { DirResult } from '@dfs/api'
import { ClientCommand } from '../../cli/base-command.js'

export default class FsMkdir extends ClientCommand<DirResult> {
  static override summary = 'Make a directory (and the directories above it); it stays when emptied, until fs rmdir'
  static override description = 'Succeeds when the directory exists already. A file at PATH is AlreadyExists, a file above it NotADirectory.'
  static override args = {
    path: Args.string({ required: true, description: 'dfs path of the directory' })
  }

  static override flags = {
    tenant: Flags.string({ description: 'act in this tenant\'s namespace (cluster-wide admins; others act in their own)' })
  }

  async run (): Promise<DirResult> {
    const { args, flags } = await this.parse(FsMkdir)
    const client = await this.client(flags)
    const r = await client.call('fs.mkdir', { path: args.path, ...(flags.tenant != null ? { tenant: flags.tenant } : {}) })
    this.say(`made ${r.path}`)
    return { path: r.path }
  }
}
