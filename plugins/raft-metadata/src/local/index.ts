export { LocalMetadataService } from './local-metadata-service.js'
export type { LocalMetadataServiceInit, LocalMetadataStats } from './local-metadata-service.js'
export * from './constants.js'
