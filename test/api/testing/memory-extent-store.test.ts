import { MemoryExtentStore, extentStoreSuite } from '@dfs/api/testing'
import type { ExtentStoreHarness, MemoryExtentBacking } from '@dfs/api/testing'

extentStoreSuite('memory', async () => {
  // The backing map plays the disk: a reopened store is a new instance over the same map.
  const backing: MemoryExtentBacking = new Map()
  const first = new MemoryExtentStore(backing)
  await first.open()
  const harness: ExtentStoreHarness = {
    store: first,
    reopen: async () => {
      await harness.store.close()
      const next = new MemoryExtentStore(backing)
      await next.open()
      harness.store = next
      return next
    },
    corrupt: async (id) => {
      (harness.store as MemoryExtentStore).corrupt(id)
    },
    cleanup: async () => {
      await harness.store.close()
      backing.clear()
    }
  }
  return harness
})
