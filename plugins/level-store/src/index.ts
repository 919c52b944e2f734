export { LevelExtentStore, bytesKeyOf, extentKeys, largeDirOf, mapLevelError, sha256 } from './level-extent-store.js'
export type { LevelExtentStoreInit } from './level-extent-store.js'
