import * as Args from '@oclif/core/args'
import type { TenantRecord } from '@dfs/api'
import { ClientCommand } from '../../cli/base-command.js'
import { describeTenant, limitFlags, limitsOf } from './create.js'

export default class TenantSet extends ClientCommand<TenantRecord> {
  static override summary = 'Change a tenant\'s quotas or request rate (cluster-wide Admin); `none` removes a limit'
  static override args = {
    name: Args.string({ required: true, description: 'the tenant' })
  }

  static override flags = limitFlags

  async run (): Promise<TenantRecord> {
    const { args, flags } = await this.parse(TenantSet)
    const client = await this.client(flags)
    const r = await client.call('tenant.set', { name: args.name, ...limitsOf(flags) })
    this.say(describeTenant(r))
    return { name: r.name, quotaBytes: r.quotaBytes, quotaFiles: r.quotaFiles, requestRate: r.requestRate }
  }
}
