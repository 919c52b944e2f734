import type { TenantListResult } from '@dfs/api'
import { ClientCommand } from '../../cli/base-command.js'
import { describeTenant } from './create.js'

export default class TenantList extends ClientCommand<TenantListResult> {
  static override summary = 'List tenants with their quotas and usage (cluster-wide Admin)'

  async run (): Promise<TenantListResult> {
    const { flags } = await this.parse(TenantList)
    const client = await this.client(flags)
    const r = await client.call('tenant.list', {})
    for (const t of r.tenants) this.say(`${describeTenant(t)}  used ${t.usedBytes} bytes in ${t.usedFiles} files`)
    return {
      tenants: r.tenants.map((t) => ({
        name: t.name, quotaBytes: t.quotaBytes, quotaFiles: t.quotaFiles, requestRate: t.requestRate, usedBytes: t.usedBytes, usedFiles: t.usedFiles
      }))
    }
  }
}
