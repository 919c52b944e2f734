import { Flags } from '@oclif/core'
import { ClientCommand } from '../../../cli/base-command.js'
import { parseDuration } from '../../../cli/duration.js'

interface TokenResult { token: string, expiresAt: string }

export default class ClusterTokenCreate extends ClientCommand<TokenResult> {
  static override summary = 'Create a join token that lets new nodes join the cluster (Admin)'
  static override description = 'The token is printed once; the cluster keeps only a hash of its secret. Any number of nodes may join with it until it expires.'
  static override flags = {
    ttl: Flags.string({ description: 'how long the token is valid: 90s, 30m, 1h, 7d … (at most 30d)', default: '1h' })
  }

  async run (): Promise<TokenResult> {
    const { flags } = await this.parse(ClusterTokenCreate)
    const ttlMs = parseDuration(flags.ttl)
    const client = await this.client(flags)
    const r = await client.call('cluster.token.create', { ttlMs })
    const expiresAt = new Date(r.expiresAtMs).toISOString()
    this.say(`${r.token}\nvalid until ${expiresAt}`)
    return { token: r.token, expiresAt }
  }
}
