/** The MetadataService replicated with Raft over libp2p, sharded over a system group and data groups. */
export { RaftMetadataService } from './raft-metadata-service.js'
export type { RaftMetadataServiceInit, RaftPeer } from './raft-metadata-service.js'
export * from './constants.js'
