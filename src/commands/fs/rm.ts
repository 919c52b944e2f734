import { Args } from '@oclif/core'
import { ClientCommand } from '../../cli/base-command.js'

export default class FsRm extends ClientCommand<{ path: string, freed: number }> {
  static override summary = 'Remove a file and free its extents'
  static override args = {
    path: Args.string({ required: true, description: 'dfs path' })
  }

  async run (): Promise<{ path: string, freed: number }> {
    const { args, flags } = await this.parse(FsRm)
    const client = await this.client(flags)
    const r = await client.call<{ path: string, freed: number }>('fs.rm', { path: args.path })
    this.say(`removed ${r.path}`)
    return r
  }
}
