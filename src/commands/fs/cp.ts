import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'
import type { CopyResult } from '@dfs/api'
import { ClientCommand } from '../../cli/base-command.js'

export default class FsCp extends ClientCommand<CopyResult> {
  static override summary = 'Copy a file; within one metadata group the copy shares the extents (no bytes move)'
  static override description = 'The copy keeps the content type and user metadata of SRC. When SRC and DST are in one metadata group ' +
    'the copy lists the same extents, reference-counted ("shared": true); otherwise the bytes are read and put again. ' +
    'A file at DST is replaced unless --no-clobber is given.'

  static override args = {
    src: Args.string({ required: true, description: 'dfs path of the file to copy' }),
    dst: Args.string({ required: true, description: 'dfs path of the copy' })
  }

  static override flags = {
    'no-clobber': Flags.boolean({ description: 'refuse (AlreadyExists) instead of replacing a file at DST', default: false }),
    tenant: Flags.string({ description: 'act in this tenant\'s namespace (cluster-wide admins; others act in their own)' })
  }

  async run (): Promise<CopyResult> {
    const { args, flags } = await this.parse(FsCp)
    const client = await this.client(flags)
    const r = await client.call('fs.cp', {
      from: args.src, to: args.dst, replace: !flags['no-clobber'], ...(flags.tenant != null ? { tenant: flags.tenant } : {})
    })
    this.say(`copied ${r.from} to ${r.to} (${r.size} bytes, ${r.shared ? 'extents shared' : 'bytes copied'})`)
    return r
  }
}
