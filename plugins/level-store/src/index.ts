export { LevelExtentStore, bytesKeyOf, extentFileOf, extentKeys, largeDirOf, mapLevelError, readStoredBytes, sha256, withClosedDb, writeStoredBytes } from './level-extent-store.js'
export type { LevelExtentStoreInit } from './level-extent-store.js'
