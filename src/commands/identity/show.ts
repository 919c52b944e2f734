import { DfsCommand } from '../../cli/base-command.js'
import { loadOrCreateKey, peerIdString } from '../../net/keys.js'

export default class IdentityShow extends DfsCommand<{ id: string }> {
  static override summary = 'Show the PeerId this CLI authenticates with'
  static override description = 'The key lives in $DFS_IDENTITY, else in identity.key of the user config dir; it is created on first use (mode 0600).'

  async run (): Promise<{ id: string }> {
    await this.parse(IdentityShow)
    const path = this.identityPath()
    const { key, created } = await loadOrCreateKey(path)
    const id = peerIdString(key)
    this.say(id)
    if (created && !this.jsonEnabled()) process.stderr.write(`created a new identity in ${path}\n`)
    return { id }
  }
}
