import * as Args from '@oclif/core/args'
import type { S3KeyIdParams } from '@dfs/api'
import { ClientCommand } from '../../../cli/base-command.js'

export default class S3KeyRevoke extends ClientCommand<S3KeyIdParams> {
  static override summary = 'Revoke an S3 access key (Admin; a tenant admin for its tenant\'s users\' keys)'
  static override description = 'Each node refuses the key as soon as it applies the revocation.'
  static override args = {
    accessKeyId: Args.string({ required: true, description: 'the access key id (DFS…)' })
  }

  async run (): Promise<S3KeyIdParams> {
    const { args, flags } = await this.parse(S3KeyRevoke)
    const client = await this.client(flags)
    const r = await client.call('s3.key.revoke', { accessKeyId: args.accessKeyId })
    this.say(`revoked ${r.accessKeyId}`)
    return { accessKeyId: r.accessKeyId }
  }
}
