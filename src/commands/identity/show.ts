import { DfsCommand } from '../../cli/base-command.js'
import { peerIdString } from '../../net/keys.js'

export default class IdentityShow extends DfsCommand<{ id: string }> {
  static override summary = 'Show the PeerId this CLI authenticates with'
  static override description = 'The key lives in $DFS_IDENTITY, else in identity.key of the user config dir. The default key is created on first use (mode 0600); a key that $DFS_IDENTITY names must exist (see `dfs identity create`).'

  async run (): Promise<{ id: string }> {
    await this.parse(IdentityShow)
    const id = peerIdString(await this.identityKey())
    this.say(id)
    return { id }
  }
}
