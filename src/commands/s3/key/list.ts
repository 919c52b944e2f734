import type { S3KeyListResult } from '@dfs/api'
import { ClientCommand } from '../../../cli/base-command.js'

interface S3KeyListJson {
  keys: Array<{ accessKeyId: string, user: string, createdAt: string }>
}

export default class S3KeyList extends ClientCommand<S3KeyListJson> {
  static override summary = 'List S3 access keys (Admin; a tenant admin sees its tenant\'s users\' keys): ids and users, never secrets'

  async run (): Promise<S3KeyListJson> {
    const { flags } = await this.parse(S3KeyList)
    const client = await this.client(flags)
    const r: S3KeyListResult = await client.call('s3.key.list', {})
    const keys = r.keys.map((k) => ({ accessKeyId: k.accessKeyId, user: k.user, createdAt: new Date(k.createdAtMs).toISOString() }))
    if (keys.length === 0) this.say('no access keys')
    for (const k of keys) this.say(`${k.accessKeyId}  ${this.shown(k.user)}  created ${k.createdAt}`)
    return { keys }
  }
}
