/**
 * Test support: N Raft groups on N real libp2p hosts (127.0.0.1) with LevelStorage in a temp dir.
 * A node can be stopped (group, transport, storage and host) and restarted with the same identity,
 * port and data dir.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { PrivateKey } from '@libp2p/interface'
import { RaftGroup } from '../../src/group/index.js'
import type { GroupStateMachine, RaftGroupInit } from '../../src/group/index.js'
import { LevelStorage, StateType } from '../../src/raft/index.js'
import { RaftTransport } from '../../src/transport/index.js'
import { newKey, startHost, testLogger, waitFor } from '../transport/libp2p-network.js'
import type { TestHost } from '../transport/libp2p-network.js'

/** A replicated list of strings: apply appends, and returns the list's new length and the index. */
export class ListMachine implements GroupStateMachine<{ index: number, length: number }> {
  items: string[] = []
  lastIndex = 0
  /** What settle does (see GroupStateMachine.settle); resolves at once unless a test says otherwise. */
  settleWith: () => Promise<void> = async () => {}
  settleCalls = 0

  /** What restored does after a leader's snapshot (see GroupStateMachine.restored); resolves at once by default. */
  restoredWith: (index: number) => Promise<void> = async () => {}
  restoredCalls: number[] = []

  async restored (index: number): Promise<void> {
    this.restoredCalls.push(index)
    await this.restoredWith(index)
  }

  async settle (): Promise<void> {
    this.settleCalls++
    await this.settleWith()
  }

  apply (payload: Uint8Array, index: number): { index: number, length: number } {
    if (index <= this.lastIndex) throw new Error(`apply at ${index} after ${this.lastIndex}`)
    this.lastIndex = index
    this.items.push(new TextDecoder().decode(payload))
    return { index, length: this.items.length }
  }

  snapshot (): Uint8Array {
    return new TextEncoder().encode(JSON.stringify({ items: this.items, lastIndex: this.lastIndex }))
  }

  restore (data: Uint8Array): void {
    if (data.byteLength === 0) {
      this.items = []
      this.lastIndex = 0
      return
    }
    const v = JSON.parse(new TextDecoder().decode(data)) as { items: string[], lastIndex: number }
    this.items = v.items
    this.lastIndex = v.lastIndex
  }
}

export type Result = { index: number, length: number }
export type GroupOptions = Partial<Omit<RaftGroupInit<Result>, 'id' | 'storage' | 'transport' | 'stateMachine'>>

export interface Member {
  key: PrivateKey
  id: string
  port: number
  addrs: string[]
  host?: TestHost
  transport?: RaftTransport
  storage?: LevelStorage
  group?: RaftGroup<Result>
  sm: ListMachine
}

export const enc = (s: string): Uint8Array => new TextEncoder().encode(s)

export class Cluster {
  readonly dir: string
  readonly members: Member[]
  readonly options: GroupOptions

  private constructor (dir: string, members: Member[], options: GroupOptions) {
    this.dir = dir
    this.members = members
    this.options = options
  }

  /** Starts n hosts, then n groups (tickMs 20 unless given). */
  static async start (n: number, options: GroupOptions = {}): Promise<Cluster> {
    const dir = await mkdtemp(join(tmpdir(), 'dfs-raft-group-'))
    const members: Member[] = []
    const c = new Cluster(dir, members, { tickMs: 20, ...options })
    try {
      for (let i = 0; i < n; i++) {
        const key = await newKey()
        const host = await startHost(key)
        members.push({ key, id: host.id, port: host.port, addrs: host.addrs, host, sm: new ListMachine() })
      }
      for (let i = 0; i < n; i++) await c.startGroup(i)
    } catch (err) {
      await c.destroy()
      throw err
    }
    return c
  }

  get ids (): string[] {
    return this.members.map((m) => m.id)
  }

  group (i: number): RaftGroup<Result> {
    const g = this.members[i].group
    if (g === undefined) throw new Error(`node ${i} is stopped`)
    return g
  }

  private async startGroup (i: number): Promise<void> {
    const m = this.members[i]
    if (m.host === undefined) throw new Error(`node ${i} has no host`)
    for (const other of this.members) {
      if (other !== m) await m.host.network.addAddresses(other.id, other.addrs)
    }
    m.transport = new RaftTransport({ network: m.host.network, backoffMsMin: 20, backoffMsMax: 200, dialTimeoutMs: 1000, logger: testLogger(`[t${i}]`) })
    await m.transport.start()
    m.storage = await LevelStorage.open(join(this.dir, `node-${i}`), { confState: { voters: [...this.ids].sort(), learners: [] } })
    m.sm = new ListMachine()
    m.group = new RaftGroup<Result>({
      id: m.id, storage: m.storage, transport: m.transport, stateMachine: m.sm, logger: testLogger(`[g${i}]`), ...this.options
    })
    m.group.start()
  }

  /** Stops node i: its group, transport, storage and host (its peers see the connection drop). */
  async stop (i: number): Promise<void> {
    const m = this.members[i]
    await m.group?.stop()
    await m.transport?.stop()
    await m.storage?.close()
    await m.host?.node.stop()
    m.group = undefined
    m.transport = undefined
    m.storage = undefined
    m.host = undefined
  }

  /** Restarts a stopped node with its key, port and data dir. */
  async restart (i: number): Promise<void> {
    const m = this.members[i]
    m.host = await startHost(m.key, m.port)
    m.addrs = m.host.addrs
    for (const other of this.members) {
      if (other !== m && other.host !== undefined) await other.host.network.addAddresses(m.id, m.addrs)
    }
    await this.startGroup(i)
  }

  running (): number[] {
    return this.members.flatMap((m, i) => m.group !== undefined ? [i] : [])
  }

  /** Waits until the running nodes agree on one leader among them; returns its index. */
  async leader (timeoutMs = 5000): Promise<number> {
    let found = -1
    await waitFor(() => {
      const running = this.running()
      const leaders = new Set(running.map((i) => this.group(i).status().leader))
      const [lead] = [...leaders]
      found = this.members.findIndex((m) => m.id === lead)
      return leaders.size === 1 && found >= 0 && this.members[found].group !== undefined &&
        this.group(found).status().state === StateType.Leader
    }, timeoutMs, 'one leader')
    return found
  }

  async destroy (): Promise<void> {
    for (let i = 0; i < this.members.length; i++) await this.stop(i).catch(() => {})
    await rm(this.dir, { recursive: true, force: true })
  }
}
