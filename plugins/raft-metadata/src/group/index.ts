/** The driver of one Raft group: RawNode + durable storage + ticker + transport + state machine. */
export { RaftGroup } from './raft-group.js'
export type { GroupCallOptions, GroupStateMachine, RaftGroupInit, RaftGroupStats, RaftGroupStatus } from './raft-group.js'
export { durableMemoryStorage } from './storage.js'
export type { DurableStorage } from './storage.js'
export { sealEnvelope, openEnvelope } from './envelope.js'
export * from './constants.js'
export { subscribeTicks, systemClock } from './clock.js'
export type { Clock, TimerHandle } from './clock.js'
