export { MetadataStateMachine, SNAPSHOT_VERSION, SYSTEM_OPS } from './state-machine.js'
export type { StateMachineScope } from './state-machine.js'
export * from './limits.js'
