import * as Flags from '@oclif/core/flags'
import { resolve } from 'node:path'
import { DfsCommand } from '../../cli/base-command.js'
import { createKeyFile, peerIdString } from '../../net/keys.js'

export default class IdentityCreate extends DfsCommand<{ id: string, path: string }> {
  static override summary = 'Create a new identity key for this CLI'
  static override description = `Writes a new Ed25519 key (mode 0600, in a directory created 0700) to $DFS_IDENTITY, else to identity.key
of the user config dir, and prints its PeerId. An existing key is kept unless --force: replacing it loses the
identity it holds, and every role granted to it.`

  static override examples = [
    'DFS_IDENTITY=~/.dfs/alice.key <%= config.bin %> identity create',
    '<%= config.bin %> identity create --json'
  ]

  static override flags = {
    force: Flags.boolean({ description: 'replace an existing key (its identity is lost)', default: false })
  }

  async run (): Promise<{ id: string, path: string }> {
    const { flags } = await this.parse(IdentityCreate)
    const path = resolve(this.identityPath())
    const id = peerIdString(await createKeyFile(path, { force: flags.force }))
    this.say(`${id}\nkey written to ${path}`)
    return { id, path }
  }
}
