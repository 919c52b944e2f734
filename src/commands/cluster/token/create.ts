import * as Flags from '@oclif/core/flags'
import { ClientCommand } from '../../../cli/base-command.js'
import { parseDuration } from '../../../cli/duration.js'

interface TokenResult { token: string, id: string, expiresAt: string, uses: number }

export default class ClusterTokenCreate extends ClientCommand<TokenResult> {
  static override summary = 'Create a join token that lets new nodes join the cluster (Admin)'
  static override description = `The token is printed once; the cluster keeps only a hash of its secret. It admits --uses nodes (one by
default), only the node whose PeerId is --for when given, until it expires (at most 24h) or is revoked
(dfs cluster token revoke ID). It names the cluster (a pin of the cluster key): a joining node refuses a peer
that cannot prove that cluster, before it sends the token. Give it to the new node in DFS_JOIN_TOKEN or in a
file only its owner can read (dfs node start --join-token-file), never on a command line.`

  static override examples = [
    '<%= config.bin %> cluster token create --json',
    '<%= config.bin %> cluster token create --ttl 30m --uses 3',
    '<%= config.bin %> cluster token create --for 12D3KooW…'
  ]

  static override flags = {
    ttl: Flags.string({ description: 'how long the token is valid: 90s, 30m, 1h … (at least 1s, at most 24h)', default: '1h' }),
    uses: Flags.integer({ description: 'how many nodes may join with it (at most 100)', default: 1, min: 1, max: 100 }),
    for: Flags.string({ description: 'PeerId of the only node that may join with it (see the node\'s data dir: node start prints it)' })
  }

  async run (): Promise<TokenResult> {
    const { flags } = await this.parse(ClusterTokenCreate)
    const ttlMs = parseDuration(flags.ttl)
    const client = await this.client(flags)
    const r = await client.call('cluster.token.create', { ttlMs, uses: flags.uses, ...(flags.for !== undefined ? { forPeer: flags.for } : {}) })
    const expiresAt = new Date(r.expiresAtMs).toISOString()
    this.say(`${r.token}\nid ${r.id}, valid until ${expiresAt} for ${r.uses} join${r.uses === 1 ? '' : 's'}`)
    return { token: r.token, id: r.id, expiresAt, uses: r.uses }
  }
}
