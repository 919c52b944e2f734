import { ClientCommand } from '../../../cli/base-command.js'

interface TokenListJson {
  tokens: Array<{ id: string, expiresAt: string, usesLeft: number | null, for: string | null }>
}

export default class ClusterTokenList extends ClientCommand<TokenListJson> {
  static override summary = 'List the live join tokens (Admin): ids, expiry, joins left; never their secrets'
  static override description = 'usesLeft is null for a token made by an older version (any number of joins until it expires).'

  async run (): Promise<TokenListJson> {
    const { flags } = await this.parse(ClusterTokenList)
    const client = await this.client(flags)
    const r = await client.call('cluster.token.list', {})
    const tokens = r.tokens.map((t) => ({ id: t.id, expiresAt: new Date(t.expiresAtMs).toISOString(), usesLeft: t.usesLeft, for: t.forPeer }))
    if (tokens.length === 0) this.say('no live join tokens')
    for (const t of tokens) {
      this.say(`${t.id}  until ${t.expiresAt}  ${t.usesLeft === null ? 'any number of' : t.usesLeft} join${t.usesLeft === 1 ? '' : 's'} left${t.for !== null ? `  for ${t.for}` : ''}`)
    }
    return { tokens }
  }
}
