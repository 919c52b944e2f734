export { DefaultPlacement } from './policies/default-placement.js'
export { DefaultRebalance } from './policies/default-rebalance.js'
