import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { LocalMetadataService } from '@dfs/raft-metadata'
import { MemoryExtentStore } from '@dfs/api/testing'
import { FileService } from '../../src/node/files.js'
import { ExtentGc } from '../../src/node/extent-gc.js'

const logger: any = Object.assign(() => {}, { error: () => {}, trace: () => {}, enabled: false })

/** A FileService over an in-memory extent store and the real (LevelDB) local metadata log, in a directory of its own. */
export interface FileServiceFixture {
  dir: string
  store: MemoryExtentStore
  metadata: LocalMetadataService
  gc: ExtentGc
  files: FileService
  /** Stops the metadata service and removes the directory. */
  close: () => Promise<void>
}

/** Opens a FileServiceFixture in a new temporary directory named after `prefix`, the node being `nodeId`. */
export async function openFileService (prefix: string, nodeId: string, options: { extentSize?: number } = {}): Promise<FileServiceFixture> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  const metadata = new LocalMetadataService({ dir, nodeId, logger })
  await metadata.start()
  const store = new MemoryExtentStore()
  await store.open()
  const gc = new ExtentGc(store)
  const files = new FileService({ nodeId, store, metadata, gc, ...(options.extentSize !== undefined ? { extentSize: options.extentSize } : {}) })
  return {
    dir, store, metadata, gc, files,
    close: async () => {
      await metadata.stop()
      await rm(dir, { recursive: true, force: true })
    }
  }
}
