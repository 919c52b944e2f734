import * as Flags from '@oclif/core/flags'
import type { S3KeyCreated } from '@dfs/api'
import { ClientCommand } from '../../../cli/base-command.js'

export default class S3KeyCreate extends ClientCommand<S3KeyCreated> {
  static override summary = 'Create an S3 access key acting as a user (Admin; a tenant admin for its tenant\'s users)'
  static override description = `The secret access key is printed once: the cluster keeps it (S3's signatures need it on the
server) but never shows it again. The key acts as --user (default: you), with that user's role and tenant;
revoking the user's role revokes its keys. Revoke a key with dfs s3 key revoke ACCESSKEYID.`

  static override examples = [
    '<%= config.bin %> s3 key create',
    '<%= config.bin %> s3 key create --user 12D3KooW… --json'
  ]

  static override flags = {
    user: Flags.string({ description: 'PeerId of the user the key acts as (default: you)' })
  }

  async run (): Promise<S3KeyCreated> {
    const { flags } = await this.parse(S3KeyCreate)
    const client = await this.client(flags)
    const r = await client.call('s3.key.create', flags.user != null ? { user: flags.user } : {})
    this.say(`access key id      ${r.accessKeyId}\nsecret access key  ${r.secretAccessKey}\nuser               ${r.user}\n` +
      'the secret is shown only now: keep it where only its owner can read it')
    return { accessKeyId: r.accessKeyId, secretAccessKey: r.secretAccessKey, user: r.user }
  }
}
