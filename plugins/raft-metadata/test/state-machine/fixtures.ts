import { seededRand as prng } from '../raft/network.js'
import type { ExtentRecord, MemberRecord, MetadataOp, MetadataResult } from '@dfs/api'
import { decodeCbor } from '../../src/codec.js'
import { MetadataStateMachine } from '../../src/state-machine/index.js'

/** A small seeded PRNG (mulberry32), so a failing run can be replayed. */
export { prng }

/** A deterministic UUID for a small number. */
export function uuid (n: number): string {
  return `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`
}

export function checksumOf (n: number): string {
  return 'sha256:' + n.toString(16).padStart(64, '0')
}

export function extent (n: number, size = 10, replicas = ['n1', 'n2', 'n3']): ExtentRecord {
  return { id: uuid(n), size, checksum: checksumOf(n), replicas }
}

export function member (id: string, name = id): MemberRecord {
  return { id, name, region: 'eu', addrs: [`/ip4/127.0.0.1/tcp/${4000 + id.length}`] }
}

/** A PutFile op whose size is the sum of its extents. */
export function putFile (path: string, extents: ExtentRecord[], mtimeMs = 1000): Extract<MetadataOp, { type: 'PutFile' }> {
  return { type: 'PutFile', path, size: extents.reduce((s, e) => s + e.size, 0), mtimeMs, extents }
}

/** A random mix of valid and invalid operations over a small namespace. */
export function randomOps (seed: number, count: number): MetadataOp[] {
  const rnd = prng(seed)
  const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)]
  const names = ['a', 'b', 'c', 'dir']
  const nodes = ['n1', 'n2', 'n3', 'n4', 'n5']
  const randomPath = (): string => {
    const depth = 1 + Math.floor(rnd() * 3)
    return '/' + Array.from({ length: depth }, () => pick(names)).join('/')
  }
  const randomExtent = (): ExtentRecord => {
    const n = Math.floor(rnd() * 60)
    return extent(n, 1 + (n % 7), [pick(nodes.slice(0, 2)), pick(nodes.slice(2))])
  }
  const ops: MetadataOp[] = []
  for (let i = 0; i < count; i++) {
    const r = rnd()
    if (r < 0.45) {
      const extents = Array.from({ length: Math.floor(rnd() * 3) }, randomExtent)
      ops.push(putFile(randomPath(), extents, i))
    } else if (r < 0.65) {
      ops.push({ type: 'DeleteFile', path: randomPath() })
    } else if (r < 0.72) {
      ops.push({ type: 'CreateExtent', extent: randomExtent() })
    } else if (r < 0.77) {
      ops.push({ type: 'DeleteExtent', id: uuid(Math.floor(rnd() * 60)) })
    } else if (r < 0.82) {
      ops.push({ type: 'MigrateExtent', id: uuid(Math.floor(rnd() * 60)), from: pick(nodes), to: pick(nodes) })
    } else if (r < 0.86) {
      ops.push({ type: 'UpdateReplication', id: uuid(Math.floor(rnd() * 60)), replicas: [pick(nodes), pick(nodes)] })
    } else if (r < 0.9) {
      ops.push({ type: 'PutMember', member: member(pick(nodes)) })
    } else if (r < 0.93) {
      ops.push({ type: 'RemoveMember', id: pick(nodes) })
    } else if (r < 0.97) {
      ops.push({ type: 'SetRole', peer: pick(nodes), role: pick(['admin', 'user', 'readonly', null] as const) })
    } else {
      ops.push({ type: 'InitCluster', clusterId: 'c1', createdAtMs: i, admin: pick(nodes), member: member(pick(nodes)) })
    }
  }
  return ops
}

/** A state machine and an `apply` that gives each operation the next index. */
export function machine (sm = new MetadataStateMachine()): { sm: MetadataStateMachine, apply: (op: unknown) => MetadataResult } {
  let index = sm.appliedIndex()
  return { sm, apply: (op) => sm.apply(op as MetadataOp, ++index) }
}

/** The typed error's name of a refused result (undefined when it applied). */
export function errorName (r: MetadataResult): string | undefined {
  return r.ok ? undefined : r.error.name
}

/** The state of a snapshot without its applied index (which every applied op, even a refused one, moves). */
export function stateOf (sm: MetadataStateMachine): unknown {
  const { appliedIndex: _, ...rest } = decodeCbor(sm.snapshot()) as Record<string, unknown>
  return rest
}
