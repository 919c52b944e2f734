import type { UserListResult } from '@dfs/api'
import { ClientCommand } from '../../cli/base-command.js'

export default class UserList extends ClientCommand<UserListResult> {
  static override summary = 'List users and their roles (Admin; a tenant admin sees its tenant\'s users)'

  async run (): Promise<UserListResult> {
    const { flags } = await this.parse(UserList)
    const client = await this.client(flags)
    const r = await client.call('user.list', {})
    for (const u of r.users) this.say(`${u.id}  ${u.role.padEnd(8)}  ${u.tenant ?? '-'}`)
    return { users: r.users.map((u) => ({ id: u.id, role: u.role, tenant: u.tenant })) }
  }
}
