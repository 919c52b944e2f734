import { Args, Flags } from '@oclif/core'
import { ClientCommand, consistencyFlag } from '../../cli/base-command.js'
import { formatBytes } from '../../cli/progress.js'
import type { Consistency, DirEntry, ListResult } from '@dfs/api'
import type { FromAnyNode } from '../../client/index.js'

interface LsJson { entries: DirEntry[], consistency: Consistency }

export default class FsLs extends ClientCommand<LsJson> {
  static override summary = 'List a directory (or show one file)'
  static override args = {
    path: Args.string({ required: false, default: '/', description: 'dfs path (default /)' })
  }

  static override flags = {
    consistency: consistencyFlag,
    tenant: Flags.string({ description: 'act in this tenant\'s namespace (cluster-wide admins; others act in their own)' })
  }

  async run (): Promise<LsJson> {
    const { args, flags } = await this.parse(FsLs)
    const client = await this.client(flags)
    const entries: DirEntry[] = []
    let after: string | undefined
    // a listing is linearizable only if every page was (each page is its own read)
    let served: Consistency | undefined
    while (true) {
      const page: FromAnyNode<ListResult> = await client.call('fs.ls',
        { path: args.path, consistency: flags.consistency, ...(after != null ? { after } : {}), ...(flags.tenant != null ? { tenant: flags.tenant } : {}) })
      if (served !== 'stale') served = page.consistency
      entries.push(...page.entries)
      if (!page.more || page.entries.length === 0) break
      after = page.entries[page.entries.length - 1].name
    }
    const consistency = this.served(served)
    for (const e of entries) {
      this.say(e.type === 'dir' ? `${'dir'.padEnd(10)}  ${e.name}/` : `${formatBytes(e.size).padEnd(10)}  ${e.name}`)
    }
    return { entries: entries.map((e) => ({ path: e.path, name: e.name, type: e.type, size: e.size })), consistency }
  }
}
