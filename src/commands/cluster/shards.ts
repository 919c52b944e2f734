import type { ClusterShards } from '@dfs/api'
import { ClientCommand } from '../../cli/base-command.js'

/** Shards as ranges for people: `0-85`, or `-` for none. */
function ranges (shards: number[]): string {
  const out: string[] = []
  for (let i = 0; i < shards.length;) {
    let j = i
    while (j + 1 < shards.length && shards[j + 1] === shards[j] + 1) j++
    out.push(i === j ? `${shards[i]}` : `${shards[i]}-${shards[j]}`)
    i = j + 1
  }
  return out.length === 0 ? '-' : out.join(',')
}

export default class ClusterShardsCommand extends ClientCommand<ClusterShards> {
  static override summary = 'Show the metadata shards: each shard\'s Raft group, replicas and leader'
  static override description = `Metadata keys hash into 256 shards (a path by its first segment); each shard is owned by one
Raft data group, and group 0, the system group, holds members, roles, tokens and the shard map.
Without --json one line per group; with --json every shard is listed.`

  async run (): Promise<ClusterShards> {
    const { flags } = await this.parse(ClusterShardsCommand)
    const client = await this.client(flags)
    const r = await client.call('cluster.shards', {})
    for (const g of r.groups) {
      this.say(`group ${g.group} (${g.kind})  shards ${ranges(g.shards)}  leader ${g.leader ?? '(none)'}  voters ${g.voters.join(',') || '-'}  learners ${g.learners.join(',') || '-'}`)
    }
    return r
  }
}
