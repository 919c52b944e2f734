/**
 * `@dfs/api/testing`: the conformance suites of the plugin contract, and what they and their users
 * need. A plugin that implements a service runs the suite of that service against it; see README.md.
 * The suites define uvu suites, so this entry needs `uvu` (an optional peer dependency of @dfs/api);
 * the main entry `@dfs/api` never loads it.
 */
export { extentStoreSuite, patternBytes, rejects, sha256 } from './extent-store-suite.js'
export type { ExtentStoreHarness } from './extent-store-suite.js'
export { metadataServiceSuite } from './metadata-service-suite.js'
export type { MetadataServiceHarness } from './metadata-service-suite.js'
export { MemoryExtentStore, flipByte } from './memory-extent-store.js'
export type { MemoryExtentBacking } from './memory-extent-store.js'
export { CLUSTERS, assertMostRegions, eligible, node, placementPolicySuite, randomRequest } from './placement-policy-suite.js'
export { GiB, MiB, Rand, randomExtent, randomLoadedCluster, randomNodes, seededRandom, shuffled } from './random-cluster.js'
export type { ClusterOptions } from './random-cluster.js'
