/** Tier-1 helpers: one RawNode driven by hand, messages built and inspected directly. */
import { EntryType, MemoryStorage, MessageType, RawNode } from '../../src/raft/index.js'
import type { Entry, Message, RaftConfig, Ready } from '../../src/raft/index.js'
import { makeMessage } from '../../src/raft/util.js'
import { bytes, seededRand } from './network.js'

export { makeMessage as msg }

export function newStorage (voters: string[], learners: string[] = []): MemoryStorage {
  return new MemoryStorage({ confState: { voters, learners } })
}

export function newNode (id: string, storage: MemoryStorage, opts: Partial<RaftConfig> = {}): RawNode {
  return new RawNode({ electionTick: 10, heartbeatTick: 1, rand: seededRand(id.charCodeAt(0)), ...opts, id, storage })
}

/** An entry whose data identifies its (index, term), so equal logs compare equal. */
export function ent (index: number, term: number): Entry {
  return { index, term, type: EntryType.Normal, data: bytes(`${index}@${term}`) }
}

/** A storage of a group `voters` whose log after the genesis (index 1) has entries of `terms` (index 2…). */
export function storageWithLog (voters: string[], terms: number[], hsTerm?: number): MemoryStorage {
  const s = newStorage(voters)
  s.append(terms.map((t, i) => ent(i + 2, t)))
  s.setHardState({ term: hsTerm ?? Math.max(1, ...terms), vote: '', commit: 1 })
  return s
}

/** Persists a Ready into `storage` as the driver would, advances, and returns it. */
export function persist (raw: RawNode, storage: MemoryStorage): Ready {
  const rd = raw.ready()
  if (rd.snapshot !== undefined) storage.applySnapshot(rd.snapshot)
  storage.append(rd.entries)
  if (rd.hardState !== undefined) storage.setHardState(rd.hardState)
  raw.advance(rd)
  return rd
}

/** The messages in the next Ready (persisting it first). */
export function readMessages (raw: RawNode, storage: MemoryStorage): Message[] {
  return persist(raw, storage).messages
}

export function logTerms (s: MemoryStorage): Array<[number, number]> {
  return s.entries(s.firstIndex(), s.lastIndex() + 1).map(e => [e.index, e.term])
}

export function ofType (ms: Message[], t: MessageType): Message[] {
  return ms.filter(m => m.type === t)
}
