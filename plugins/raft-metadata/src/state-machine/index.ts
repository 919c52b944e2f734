export { MetadataStateMachine, SNAPSHOT_VERSION } from './state-machine.js'
export type { StateMachineScope } from './state-machine.js'
export * from './limits.js'
