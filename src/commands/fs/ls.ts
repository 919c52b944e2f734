import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'
import { ClientCommand, consistencyFlag } from '../../cli/base-command.js'
import { formatBytes } from '../../cli/progress.js'
import { InvalidArgumentError, type Consistency, type DirEntry, type ListResult } from '@dfs/api'
import type { FromAnyNode } from '../../client/index.js'

interface LsJson {
  entries: DirEntry[]
  consistency: Consistency
  /** With --limit, when more entries follow: pass it as --token to list the next page. */
  next?: string
}

/** A continuation token: the last name listed, opaque to users. */
function tokenOf (name: string): string {
  return Buffer.from(`n:${name}`, 'utf8').toString('base64url')
}

function nameOfToken (token: string): string {
  const text = Buffer.from(token, 'base64url').toString('utf8')
  if (!text.startsWith('n:') || tokenOf(text.slice(2)) !== token) throw new InvalidArgumentError('--token is not a token an earlier `fs ls --limit` printed', { token: token.slice(0, 64) })
  return text.slice(2)
}

export default class FsLs extends ClientCommand<LsJson> {
  static override summary = 'List a directory (or show one file)'
  static override description = `Lists every entry, asking the node for pages of up to 1,000. With --limit N it prints at most N and,
when more follow, a continuation token ("next" in --json) to pass as --token for the next page: each page
costs the node O(page), whatever the directory's size.`
  static override args = {
    path: Args.string({ required: false, default: '/', description: 'dfs path (default /)' })
  }

  static override flags = {
    consistency: consistencyFlag,
    limit: Flags.integer({ description: 'list at most N entries, then print a token for the rest', min: 1 }),
    token: Flags.string({ description: 'continue a listing after the page that printed this token' }),
    tenant: Flags.string({ description: 'act in this tenant\'s namespace (cluster-wide admins; others act in their own)' })
  }

  async run (): Promise<LsJson> {
    const { args, flags } = await this.parse(FsLs)
    const client = await this.client(flags)
    const entries: DirEntry[] = []
    let after: string | undefined = flags.token === undefined ? undefined : nameOfToken(flags.token)
    const want = flags.limit ?? Infinity
    let more = false
    // a listing is linearizable only if every page was (each page is its own read)
    let served: Consistency | undefined
    while (entries.length < want) {
      const page: FromAnyNode<ListResult> = await client.call('fs.ls', {
        path: args.path,
        consistency: flags.consistency,
        ...(after != null ? { after } : {}),
        ...(Number.isFinite(want) ? { limit: Math.min(1000, want - entries.length) } : {}),
        ...(flags.tenant != null ? { tenant: flags.tenant } : {})
      })
      if (served !== 'stale') served = page.consistency
      entries.push(...page.entries)
      more = page.more && page.entries.length > 0
      if (!more) break
      after = page.entries[page.entries.length - 1].name
    }
    const consistency = this.served(served)
    for (const e of entries) {
      this.say(e.type === 'dir' ? `${'dir'.padEnd(10)}  ${e.name}/` : `${formatBytes(e.size).padEnd(10)}  ${e.name}`)
    }
    const next = more && flags.limit !== undefined ? tokenOf(entries[entries.length - 1].name) : undefined
    if (next !== undefined) this.say(`more: --token ${next}`)
    return { entries: entries.map((e) => ({ path: e.path, name: e.name, type: e.type, size: e.size })), consistency, ...(next !== undefined ? { next } : {}) }
  }
}
