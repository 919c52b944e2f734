import * as Args from '@oclif/core/args'
import { ClientCommand } from '../../../cli/base-command.js'

export default class ClusterTokenRevoke extends ClientCommand<{ id: string }> {
  static override summary = 'Revoke a join token (Admin): no node joins with it any more'
  static override args = {
    id: Args.string({ required: true, description: 'the token\'s id (dfs cluster token list; the second part of the token)' })
  }

  async run (): Promise<{ id: string }> {
    const { args, flags } = await this.parse(ClusterTokenRevoke)
    const client = await this.client(flags)
    const r = await client.call('cluster.token.revoke', { id: args.id })
    this.say(`revoked join token ${r.id}`)
    return { id: r.id }
  }
}
