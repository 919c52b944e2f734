import type { Hook } from '@oclif/core'
import { ConfigError } from '@dfs/api'
import { LocalMetadataService } from '../local/index.js'
import { RaftMetadataService } from '../replicated/index.js'

/**
 * Provides the metadata services:
 * - `local`: a group-committed log on this node only (one-node clusters);
 * - `raft`: Raft over libp2p. A node that creates a new cluster starts a group whose only voter is
 *   itself; a restarted node resumes the group recorded in its log.
 */
const hook: Hook<'dfs:services'> = async function (opts) {
  opts.registry.provide('metadata', 'local', (init) => new LocalMetadataService(init))
  opts.registry.provide('metadata', 'raft', (init) => {
    if (init.network == null) throw new ConfigError('the raft metadata service needs the node\'s network')
    return new RaftMetadataService({ ...init, network: init.network, peers: [{ id: init.nodeId, addrs: [] }] })
  })
}

export default hook
