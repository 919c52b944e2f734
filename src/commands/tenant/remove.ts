import * as Args from '@oclif/core/args'
import type { TenantNameParams } from '@dfs/api'
import { ClientCommand } from '../../cli/base-command.js'

export default class TenantRemove extends ClientCommand<TenantNameParams> {
  static override summary = 'Remove a tenant (cluster-wide Admin); refused (FailedPrecondition) while it holds files'
  static override args = {
    name: Args.string({ required: true, description: 'the tenant' })
  }

  async run (): Promise<TenantNameParams> {
    const { args, flags } = await this.parse(TenantRemove)
    const client = await this.client(flags)
    const r = await client.call('tenant.remove', { name: args.name })
    this.say(`removed tenant ${r.name}`)
    return { name: r.name }
  }
}
