export { DefaultPlacement } from './policies/default-placement.js'
export { DefaultRebalance } from './policies/default-rebalance.js'
export { DefaultReplication } from './service/replication-service.js'
export type { ReplicationTuning } from './service/replication-service.js'
