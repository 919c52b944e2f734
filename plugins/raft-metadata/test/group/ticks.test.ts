/**
 * The groups of a node tick from one shared timer (subscribeTicks), so their heartbeats to a peer
 * leave together: unit tests on a fake clock, and two groups led by one node over real libp2p.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { RaftGroup, subscribeTicks, systemClock } from '../../src/group/index.js'
import type { Clock } from '../../src/group/index.js'
import { LevelStorage, StateType } from '../../src/raft/index.js'
import { RaftTransport } from '../../src/transport/index.js'
import { ListMachine } from './cluster.js'
import type { Result } from './cluster.js'
import { newKey, silentLogger, startHost, waitFor } from '../transport/libp2p-network.js'
import type { TestHost } from '../transport/libp2p-network.js'

const test = suite('shared ticks')

/** A clock whose intervals run only when the test says so. */
function fakeClock (): Clock & { fire: () => void, intervals: Map<number, () => void>, made: number } {
  const intervals = new Map<number, () => void>()
  let next = 0
  const clock = {
    intervals,
    made: 0,
    now: () => 0,
    setTimeout: () => 0,
    clearTimeout: () => {},
    setInterval: (fn: () => void) => {
      clock.made++
      intervals.set(++next, fn)
      return next
    },
    clearInterval: (h: unknown) => { intervals.delete(h as number) },
    defer: (fn: () => void) => { fn() },
    fire: () => { for (const fn of [...intervals.values()]) fn() }
  }
  return clock
}

test('subscribers of one clock and period share one timer, in subscription order', () => {
  const clock = fakeClock()
  const calls: string[] = []
  const stopA = subscribeTicks(clock, 100, () => { calls.push('a') })
  const stopB = subscribeTicks(clock, 100, () => { calls.push('b') })
  const stopC = subscribeTicks(clock, 50, () => { calls.push('c') })
  assert.is(clock.made, 2, 'one timer per period')
  clock.fire()
  assert.equal(calls.sort(), ['a', 'b', 'c'])
  calls.length = 0
  stopA()
  stopA() // idempotent: must not remove b
  clock.fire()
  assert.equal(calls.sort(), ['b', 'c'])
  stopB()
  stopC()
  assert.is(clock.intervals.size, 0, 'the timer stops with its last subscriber')
  subscribeTicks(clock, 100, () => { calls.push('d') })
  assert.is(clock.made, 3, 'a new subscriber after that gets a new timer')
})

test('a subscriber that unsubscribes another during a tick does not break the tick', () => {
  const clock = fakeClock()
  const calls: string[] = []
  let stopB: () => void = () => {}
  subscribeTicks(clock, 10, () => { calls.push('a'); stopB() })
  stopB = subscribeTicks(clock, 10, () => { calls.push('b') })
  clock.fire()
  clock.fire()
  assert.equal(calls, ['a', 'b', 'a'])
})

test('two groups led by one node send their heartbeats to a peer in one transport write per tick', async () => {
  const TICK_MS = 20
  const dir = await mkdtemp(join(tmpdir(), 'dfs-ticks-'))
  const hosts: TestHost[] = []
  const transports: RaftTransport[] = []
  const storages: LevelStorage[] = []
  const groups: Array<Array<RaftGroup<Result>>> = [[], []]
  try {
    for (let i = 0; i < 2; i++) hosts.push(await startHost(await newKey()))
    await hosts[0].network.addAddresses(hosts[1].id, hosts[1].addrs)
    await hosts[1].network.addAddresses(hosts[0].id, hosts[0].addrs)
    const voters = hosts.map((h) => h.id).sort()
    for (let i = 0; i < 2; i++) {
      const t = new RaftTransport({ network: hosts[i].network, backoffMsMin: 20, backoffMsMax: 200, dialTimeoutMs: 1000 })
      await t.start()
      transports.push(t)
      for (const g of [1, 2]) {
        const storage = await LevelStorage.open(join(dir, `n${i}-g${g}`), { confState: { voters, learners: [] } })
        storages.push(storage)
        const group = new RaftGroup<Result>({
          // a heartbeat every tick (the default is every second tick, whose phase differs per group)
          id: hosts[i].id, group: g, storage, transport: t, stateMachine: new ListMachine(), tickMs: TICK_MS, heartbeatTick: 1, logger: silentLogger, clock: systemClock
        })
        group.start()
        groups[i].push(group)
      }
    }
    // both groups led by node 0
    await waitFor(() => {
      for (let g = 0; g < 2; g++) {
        const st = groups[0][g].status()
        if (st.leader === hosts[1].id) groups[1][g].transferLeadership(hosts[0].id)
      }
      return groups[0].every((g) => g.status().state === StateType.Leader) && groups[1].every((g) => g.status().leader === hosts[0].id)
    }, 10_000, 'node 0 leading both groups')
    const before = transports[0].stats.writes
    const t0 = performance.now()
    await new Promise((resolve) => setTimeout(resolve, 1000))
    const ticks = (performance.now() - t0) / TICK_MS
    const writes = transports[0].stats.writes - before
    // one heartbeat write per tick (a tick lost to a busy loop only lowers it); a timer per group
    // made it about two, one for each group's heartbeat
    assert.ok(writes <= ticks * 1.3, `${writes} writes to the follower in ${ticks.toFixed(0)} ticks`)
    assert.ok(writes >= ticks * 0.5, `${writes} writes in ${ticks.toFixed(0)} ticks: heartbeats are not sent`)
  } finally {
    for (const gs of groups) for (const g of gs) await g.stop().catch(() => {})
    for (const t of transports) await Promise.resolve(t.stop()).catch(() => {})
    for (const s of storages) await s.close().catch(() => {})
    for (const h of hosts) await Promise.resolve(h.node.stop()).catch(() => {})
    await rm(dir, { recursive: true, force: true })
  }
})

test.run()
