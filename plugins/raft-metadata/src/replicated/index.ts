/** The MetadataService replicated with Raft over libp2p (one group, static initial voters). */
export { RaftMetadataService } from './raft-metadata-service.js'
export type { RaftMetadataServiceInit, RaftPeer } from './raft-metadata-service.js'
export * from './constants.js'
