import * as Args from '@oclif/core/args'
import type { UserIdParams } from '@dfs/api'
import { ClientCommand } from '../../cli/base-command.js'

export default class UserRevoke extends ClientCommand<UserIdParams> {
  static override summary = 'Revoke a PeerId\'s role (Admin; a tenant admin for its tenant\'s users). The last cluster-wide admin stays.'
  static override args = {
    id: Args.string({ required: true, description: 'the PeerId' })
  }

  async run (): Promise<UserIdParams> {
    const { args, flags } = await this.parse(UserRevoke)
    const client = await this.client(flags)
    const r = await client.call('user.revoke', { id: args.id })
    this.say(`revoked ${r.id}`)
    return { id: r.id }
  }
}
