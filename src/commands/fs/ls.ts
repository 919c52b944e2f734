import { Args } from '@oclif/core'
import { ClientCommand } from '../../cli/base-command.js'
import { formatBytes } from '../../cli/progress.js'
import type { DirEntry } from '@dfs/api'

export default class FsLs extends ClientCommand<{ entries: DirEntry[] }> {
  static override summary = 'List a directory (or show one file)'
  static override args = {
    path: Args.string({ required: false, default: '/', description: 'dfs path (default /)' })
  }

  async run (): Promise<{ entries: DirEntry[] }> {
    const { args, flags } = await this.parse(FsLs)
    const client = await this.client(flags)
    const entries: DirEntry[] = []
    let after: string | undefined
    while (true) {
      const page = await client.call<{ entries: DirEntry[], more: boolean }>('fs.ls', { path: args.path, ...(after != null ? { after } : {}) })
      entries.push(...page.entries)
      if (!page.more || page.entries.length === 0) break
      after = page.entries[page.entries.length - 1].name
    }
    for (const e of entries) {
      this.say(e.type === 'dir' ? `${'dir'.padEnd(10)}  ${e.name}/` : `${formatBytes(e.size).padEnd(10)}  ${e.name}`)
    }
    return { entries: entries.map((e) => ({ path: e.path, name: e.name, type: e.type, size: e.size })) }
  }
}
