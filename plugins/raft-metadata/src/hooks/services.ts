import type { Hook } from '@oclif/core'
import { ConfigError } from '@dfs/api'
import { LocalMetadataService } from '../local/index.js'
import { RaftMetadataService } from '../replicated/index.js'

/**
 * Provides the metadata services:
 * - `local`: a group-committed log on this node only (one-node clusters, no joining);
 * - `raft`: Raft over libp2p, sharded over a system group and data groups. A node that creates a new
 *   cluster starts groups whose only voter is itself; a joining node starts empty and learns the
 *   groups from their leaders; a restarted node resumes the groups recorded in its logs.
 */
const hook: Hook<'dfs:services'> = async function (opts) {
  opts.registry.provide('metadata', 'local', (init) => {
    if (init.join === true) throw new ConfigError('the local metadata service cannot join a cluster: use --metadata raft')
    return new LocalMetadataService({ ...init, compactEvery: init.snapshotEvery })
  })
  opts.registry.provide('metadata', 'raft', (init) => {
    if (init.network == null) throw new ConfigError('the raft metadata service needs the node\'s network')
    return new RaftMetadataService({
      ...init,
      network: init.network,
      peers: init.join === true ? [] : [{ id: init.nodeId, addrs: [] }],
      dataGroups: init.metadataGroups,
      // keep a short tail after a snapshot when snapshots are frequent, so lagging nodes need them
      snapshotKeepEntries: init.snapshotEvery != null ? Math.min(1000, Math.floor(init.snapshotEvery / 2)) : undefined
    })
  })
}

export default hook
