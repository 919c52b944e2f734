import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'
import type { RenameResult } from '@dfs/api'
import { ClientCommand } from '../../cli/base-command.js'

export default class FsMv extends ClientCommand<RenameResult> {
  static override summary = 'Rename a file or directory (no bytes move)'
  static override description = 'Like POSIX rename: a file at DST is replaced (its extents freed) unless --no-clobber is given. ' +
    'Within one metadata group it is one atomic step; a file moves to another group by a crash-safe transfer ' +
    '(for an instant a reader may see it at both names); a directory moves there file by file (each file crash-safe, the whole not atomic).'

  static override args = {
    src: Args.string({ required: true, description: 'dfs path to rename' }),
    dst: Args.string({ required: true, description: 'its new dfs path' })
  }

  static override flags = {
    'no-clobber': Flags.boolean({ description: 'refuse (AlreadyExists) instead of replacing a file at DST', default: false }),
    tenant: Flags.string({ description: 'act in this tenant\'s namespace (cluster-wide admins; others act in their own)' })
  }

  async run (): Promise<RenameResult> {
    const { args, flags } = await this.parse(FsMv)
    const client = await this.client(flags)
    const r = await client.call('fs.mv', {
      from: args.src, to: args.dst, replace: !flags['no-clobber'], ...(flags.tenant != null ? { tenant: flags.tenant } : {})
    })
    this.say(`renamed ${r.from} to ${r.to}`)
    return { from: r.from, to: r.to }
  }
}
