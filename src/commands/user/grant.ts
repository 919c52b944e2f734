import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'
import type { Role, UserRecord } from '@dfs/api'
import { ClientCommand } from '../../cli/base-command.js'

export default class UserGrant extends ClientCommand<UserRecord> {
  static override summary = 'Grant a role to a PeerId, cluster-wide or within a tenant (Admin; a tenant admin within its tenant)'
  static override description = 'Roles: admin (everything; a tenant admin: its tenant\'s files and users), user (read and write files, read cluster status), ' +
    'readonly (read files and cluster status). A new grant replaces the old one; it takes effect on every node within a second.'

  static override args = {
    id: Args.string({ required: true, description: 'the PeerId (dfs identity show)' }),
    role: Args.string({ required: true, options: ['admin', 'user', 'readonly'], description: 'admin, user or readonly' })
  }

  static override flags = {
    tenant: Flags.string({ description: 'bind the user to this tenant (it then sees only the tenant\'s namespace)' })
  }

  async run (): Promise<UserRecord> {
    const { args, flags } = await this.parse(UserGrant)
    const client = await this.client(flags)
    const r = await client.call('user.grant', { id: args.id, role: args.role as Role, ...(flags.tenant != null ? { tenant: flags.tenant } : {}) })
    this.say(`${r.id} is ${r.role}${r.tenant === null ? ' (cluster-wide)' : ` in tenant ${r.tenant}`}`)
    return { id: r.id, role: r.role, tenant: r.tenant }
  }
}
