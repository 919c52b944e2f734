/**
 * Test support: an in-memory transport for RaftGroups (every message delivered in a later microtask,
 * recorded, and droppable by a predicate) and a DurableStorage whose writes a test can hold.
 */
import { durableMemoryStorage } from '../../src/group/index.js'
import type { DurableStorage } from '../../src/group/index.js'
import type { MemoryStorage, Message, NodeId } from '../../src/raft/index.js'
import type { GroupTransport, RaftTransportHandler } from '../../src/transport/index.js'

/** Delivers every message in a later microtask (unless `dropIf` says so), and records what was sent. */
export class Hub {
  readonly handlers = new Map<NodeId, RaftTransportHandler>()
  readonly sent: Message[] = []
  dropIf: ((m: Message) => boolean) | undefined

  transport (self: NodeId): GroupTransport {
    return {
      self,
      register: (_group, handler) => { this.handlers.set(self, handler) },
      unregister: () => { this.handlers.delete(self) },
      send: (_group, messages) => {
        for (const m of messages) {
          this.sent.push(m)
          if (this.dropIf?.(m) === true) continue
          queueMicrotask(() => { this.handlers.get(m.to)?.receive(self, [m]) })
        }
      }
    }
  }
}

type SaveReady = DurableStorage['saveReady']

/** A DurableStorage whose saveReady waits while held (every write, or those `which` picks). */
export interface Gated { storage: DurableStorage, hold: (which?: (rd: Parameters<SaveReady>[0]) => boolean) => void, release: () => void, pending: () => number }

export function gated (mem: MemoryStorage): Gated {
  const inner = durableMemoryStorage(mem)
  let held: ((rd: Parameters<SaveReady>[0]) => boolean) | undefined
  let waiting: Array<() => void> = []
  const storage: DurableStorage = {
    ...inner,
    saveReady: async (rd) => {
      if (held?.(rd) === true) await new Promise<void>((resolve) => { waiting.push(resolve) })
      await inner.saveReady(rd)
    }
  }
  return {
    storage,
    hold: (which = () => true) => { held = which },
    release: () => {
      held = undefined
      const w = waiting
      waiting = []
      for (const r of w) r()
    },
    pending: () => waiting.length
  }
}

