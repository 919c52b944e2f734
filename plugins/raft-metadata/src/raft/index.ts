/** The dfs Raft core: a pure state machine (RawNode), its storages and its types. */
export * from './types.js'
export { RawNode } from './raw-node.js'
export { encodeConfChange, decodeConfChange, applyToConfState, roleOf } from './conf-change.js'
export { MemoryStorage, GENESIS_INDEX, GENESIS_TERM } from './memory-storage.js'
export type { StorageParts } from './memory-storage.js'
export {
  ProposalDroppedError, CompactedError, UnavailableError, SnapshotTemporarilyUnavailableError,
  SnapshotOutOfDateError, InvalidConfChangeError, CorruptLogError
} from './errors.js'
export { CAMPAIGN_TRANSFER_CONTEXT } from './constants.js'
export { holdsConfChange, mustSync } from './util.js'
export { LevelStorage, RaftLogDb, levelLogStore } from './level-storage.js'
export { WalLogStore, WAL_SEGMENT_BYTES_DEFAULT } from './wal-log-store.js'
export type { WalOptions } from './wal-log-store.js'
export type { BatchOp, LogStore } from './level-storage.js'
