export { RegionPlacement } from './region-placement.js'
