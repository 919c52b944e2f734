import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomBytes, randomInt } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import type { DfsClient } from '../../src/client/index.js'
import { getFile } from '../../src/client/files.js'
import { listenAddress, Sandbox, sha256Hex, waitFor, type NodeHandle } from './harness.js'

/**
 * Power loss of the whole cluster: every node dies by kill -9 at the same moment (idle, or in the
 * middle of writes) and comes back from its data dir on the address it had, as machines do after a
 * power cut. Every node must start again, the cluster must be healthy again within seconds, and
 * every put acknowledged before the cut must read back byte for byte. A put still in flight may be
 * missing afterwards, but never different.
 *
 * Snapshots every 3 metadata operations, so each group snapshots and compacts many times between
 * cuts: the cut finds a snapshot on disk next to a hard state and log written at other moments.
 */
// short heartbeats as in the other cluster tests
const FAST = ['--heartbeat-ms', '200', '--failure-timeout-ms', '1500']
const SNAPSHOT_EVERY = ['--metadata-snapshot-every', '3']
// several top-level directories, so several metadata data groups take writes (a path's shard is its first segment's)
const DIRS = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h']
const HEALTHY_WITHIN_MS = 20_000

/** The last lines of a node's stderr, for a failure message. */
function tail (node: NodeHandle, lines = 15): string {
  return node.stderr().trimEnd().split('\n').slice(-lines).join('\n')
}

/** Throws (with its stderr) if a node process is gone; waitFor stops at once on "node exited". */
function assertUp (nodes: ReadonlyMap<string, NodeHandle>, when: string): void {
  for (const [name, n] of nodes) {
    if (n.proc.exitCode != null || n.proc.signalCode != null) {
      throw new Error(`node exited: ${name} (${when}) with ${n.proc.exitCode ?? n.proc.signalCode}; its stderr ends:\n${tail(n)}`)
    }
  }
}

/** kill -9 of every node in the same tick, then waits until each is gone. */
async function killAll (nodes: ReadonlyMap<string, NodeHandle>): Promise<void> {
  const exits = [...nodes.values()].map(async (n) => await n.stop('SIGKILL'))
  for (const code of await Promise.all(exits)) assert.is(code, null, 'killed by the signal')
}

/** Starts `old` again from its data dir on its address; a node that exits names itself and its last stderr. */
async function restart (sb: Sandbox, name: string, old: NodeHandle, args: string[], when: string): Promise<NodeHandle> {
  try {
    return await sb.startNode({ dataDir: old.dataDir, listen: listenAddress(old), args })
  } catch (err) {
    const text = (err as Error).message
    const lines = text.trimEnd().split('\n')
    throw new Error(`${name} did not come back ${when}: ${lines[0]}${lines.length > 1 ? `\n  …\n${lines.slice(-15).join('\n')}` : ''}`, { cause: err })
  }
}

async function put (client: DfsClient, path: string, bytes: Uint8Array): Promise<void> {
  await client.rpc.upload('fs.put', { path }, (async function * () { yield bytes })(), { timeoutMs: client.timeoutMs })
}

/** Reads `path` through `client` into memory; undefined when it does not exist. */
async function get (client: DfsClient, path: string): Promise<Buffer | undefined> {
  const chunks: Buffer[] = []
  const sink = new Writable({ write (chunk: Buffer, _enc, done) { chunks.push(chunk); done() } })
  try {
    await getFile(client, path, sink)
  } catch (err: any) {
    if (err?.name === 'NotFound') return undefined
    throw err
  }
  return Buffer.concat(chunks)
}

/** What `paths` hold through `node`: the sha256 of each, NotFound, or the error a read failed with; four reads at a time. */
async function contents (sb: Sandbox, node: NodeHandle, paths: readonly string[]): Promise<Map<string, string>> {
  const client = await sb.client(node, 5000)
  const seen = new Map<string, string>()
  try {
    const queue = [...paths]
    await Promise.all(Array.from({ length: 4 }, async () => {
      for (let path = queue.shift(); path != null; path = queue.shift()) {
        try {
          const bytes = await get(client, path)
          seen.set(path, bytes === undefined ? 'NotFound' : sha256Hex(bytes))
        } catch (err: any) {
          seen.set(path, `${err?.name as string}: ${err?.message as string}`)
        }
      }
    }))
  } finally {
    await client.close()
  }
  return seen
}

/**
 * Reads every file of `acked` (path → sha256) through each node and fails with the list of files
 * missing or different (not just the first). `unacked` puts may be absent, never different.
 */
async function checkFiles (sb: Sandbox, nodes: ReadonlyMap<string, NodeHandle>, acked: ReadonlyMap<string, string>, unacked: ReadonlyMap<string, string>, when: string): Promise<void> {
  const problems: string[] = []
  for (const [name, n] of nodes) {
    const seen = await contents(sb, n, [...acked.keys(), ...unacked.keys()])
    for (const [path, got] of seen) {
      const want = acked.get(path) ?? unacked.get(path)
      if (got === want || (got === 'NotFound' && !acked.has(path))) continue
      problems.push(`${path} through ${name}: ${got === 'NotFound' ? 'acknowledged, now NotFound' : `${got}, put was ${want as string}`}`)
    }
  }
  assert.ok(problems.length === 0, `${when}: ${problems.length} of ${(acked.size + unacked.size) * nodes.size} reads wrong:\n${problems.slice(0, 20).join('\n')}`)
}

/**
 * Every node up and, through each, a leader for the cluster and for every metadata group and all
 * members healthy (polled in-process; then `dfs cluster status --json` says so too).
 */
async function waitHealthy (sb: Sandbox, nodes: ReadonlyMap<string, NodeHandle>, when: string): Promise<void> {
  const count = nodes.size
  const clients = await Promise.all([...nodes.values()].map(async (n) => await sb.client(n, 3000)))
  try {
    await waitFor(async () => {
      assertUp(nodes, when)
      const views = await Promise.all(clients.map(async (c) => ({ status: await c.call('cluster.status', {}), shards: await c.call('cluster.shards', {}) })))
      const ok = views.every((v) => v.status.leader != null && v.status.nodes.healthy === count && v.status.nodes.total === count &&
        v.shards.groups.length > 0 && v.shards.groups.every((g: any) => g.leader != null))
      return ok ? true : undefined
    }, HEALTHY_WITHIN_MS, `a healthy cluster ${when}`)
  } finally {
    await Promise.all(clients.map(async (c) => { await c.close() }))
  }
  const [name, first] = [...nodes][0]
  const r = await sb.run(['cluster', 'status', '--json', '--node', first.addr])
  assert.is(r.code, 0, `cluster status through ${name} ${when}: ${r.stderr}`)
  assert.equal(r.json.nodes, { total: count, healthy: count, suspected: 0, failed: 0 }, `cluster status through ${name} ${when}`)
}

/**
 * Writers, two per node, putting 1–6 KiB of random bytes into the top-level directories in turn;
 * `acked` gets a file once its put returned, `unacked` one whose put failed (or never answered).
 */
function startWriters (sb: Sandbox, nodes: ReadonlyMap<string, NodeHandle>, round: number, acked: Map<string, string>, unacked: Map<string, string>): { ackedThisRound: () => number, stop: () => Promise<void> } {
  let stopped = false
  let count = 0
  const writers = [...nodes.values(), ...nodes.values()].map(async (n, w) => {
    const client = await sb.client(n, 5000)
    try {
      for (let seq = 0; !stopped; seq++) {
        const path = `/${DIRS[(w + seq) % DIRS.length]}/r${round}-w${w}-${seq}.bin`
        const bytes = randomBytes(1024 + randomInt(5 * 1024))
        const digest = sha256Hex(bytes)
        try {
          await put(client, path, bytes)
          acked.set(path, digest)
          count++
        } catch {
          // in flight when its node died (or failed for another reason): only acknowledged puts count
          unacked.set(path, digest)
          if (n.proc.exitCode != null || n.proc.signalCode != null) return
        }
      }
    } finally {
      await client.close()
    }
  })
  return {
    ackedThisRound: () => count,
    stop: async () => {
      stopped = true
      await Promise.all(writers)
    }
  }
}

const test = suite('e2e: power loss of the whole cluster')
let sb: Sandbox

test.before.each(async () => { sb = await Sandbox.create() })
test.after.each(async () => { await sb.cleanup() })

test('kill -9 of all three nodes, idle and under load: each comes back, the cluster is healthy, every acknowledged put reads back', async () => {
  const args = [...FAST, ...SNAPSHOT_EVERY]
  const nodes = new Map<string, NodeHandle>()
  const first = await sb.startNode({ args: ['--name', 'n1', ...args] })
  nodes.set('n1', first)
  const t = await sb.run(['cluster', 'token', 'create', '--uses', '10', '--json', '--node', first.addr])
  assert.is(t.code, 0, t.stderr)
  for (const name of ['n2', 'n3']) {
    nodes.set(name, await sb.startNode({ args: ['--name', name, '--peers', first.addr, '--join-token', t.json.token, ...args] }))
  }
  await waitFor(async () => {
    const r = await sb.run(['cluster', 'nodes', '--json', '--node', first.addr])
    const ms = r.json?.nodes ?? []
    return ms.length === 3 && ms.every((m: any) => m.voter && m.health === 'healthy') ? ms : undefined
  }, 20_000, 'three healthy voters')

  const acked = new Map<string, string>()
  const unacked = new Map<string, string>()
  // idle: writes stopped 1.5 s before the cut, so heartbeats have spread every commit index and
  // followers applied (and snapshotted) up to it; under load: the cut lands between fsyncs
  const rounds = [{ cut: 'idle', ackedMin: 60 }, { cut: 'under load', ackedMin: 40 }, { cut: 'idle', ackedMin: 40 }]
  for (const [i, { cut, ackedMin }] of rounds.entries()) {
    const round = i + 1
    const writers = startWriters(sb, nodes, round, acked, unacked)
    await waitFor(async () => {
      assertUp(nodes, `round ${round}, writing`)
      return writers.ackedThisRound() >= ackedMin ? true : undefined
    }, 30_000, `${ackedMin} acknowledged puts in round ${round}`)
    if (cut === 'idle') {
      await writers.stop()
      // deliberate idle time before the cut (part of the scenario, not a synchronization)
      await new Promise((resolve) => setTimeout(resolve, 1500))
      assertUp(nodes, `round ${round}, idle`)
      await killAll(nodes)
    } else {
      await killAll(nodes)
      await writers.stop()
    }

    const when = `after round ${round} (kill -9 of all three nodes ${cut}, ${acked.size} puts acknowledged so far)`
    const back = await Promise.all([...nodes].map(async ([name, old]) => [name, await restart(sb, name, old, args, when)] as const))
    for (const [name, n] of back) nodes.set(name, n)
    await waitHealthy(sb, nodes, when)
    await checkFiles(sb, nodes, acked, unacked, when)
    // interrupted puts are checked right after the cut that interrupted them
    unacked.clear()
    assertUp(nodes, when)
  }
  for (const [name, n] of nodes) assert.is(await n.stop(), 0, `${name} stops cleanly:\n${tail(n)}`)
})

test('one voter and one learner: a put acknowledged through the learner survives kill -9 of the voter, and both agree', async () => {
  const voter0 = await sb.startNode({ args: ['--name', 'voter', ...FAST] })
  const t = await sb.run(['cluster', 'token', 'create', '--uses', '10', '--json', '--node', voter0.addr])
  assert.is(t.code, 0, t.stderr)
  const learner = await sb.startNode({ args: ['--name', 'learner', '--peers', voter0.addr, '--join-token', t.json.token, ...FAST] })
  // with two members every metadata group keeps one voter; the other member is its learner
  const map = await waitFor(async () => {
    const r = await sb.run(['cluster', 'shards', '--json', '--node', voter0.addr])
    const groups = r.json?.groups ?? []
    return groups.length > 0 && groups.every((g: any) => g.leader === voter0.id && g.voters.join() === voter0.id && g.learners.join() === learner.id) ? r.json : undefined
  }, 20_000, 'every group with the voter leading and the learner following')
  assert.ok(map.groups.length >= 2)

  // a first put through the learner, so the writes below do not wait for connections
  await writeFile(join(sb.dir, 'warm.bin'), randomBytes(100))
  const warm = await sb.run(['fs', 'put', join(sb.dir, 'warm.bin'), '/p/warm.bin', '--node', learner.addr])
  assert.is(warm.code, 0, warm.stderr)

  // Three times: sixteen writers through the learner, and the voter dies the moment the 24th put
  // of the cycle is acknowledged, while the others' entries queue behind its log writes (whether a
  // cut lands in that window is a matter of timing, hence more than one).
  const acked = new Map<string, string>()
  const tried: string[] = []
  const nodes = new Map([['voter', voter0], ['learner', learner]])
  let lastAcked = ''
  for (let cycle = 1; cycle <= 3; cycle++) {
    const voter = nodes.get('voter') as NodeHandle
    const client = await sb.client(learner, 2000)
    let killed = false
    try {
      // one call first: sixteen at once on a fresh client fail with NodeUnreachable ("closed the connection during the handshake")
      await put(client, `/p/warm${cycle}.bin`, randomBytes(10))
      let count = 0
      const deadline = Date.now() + 30_000
      await Promise.all(Array.from({ length: 16 }, async (_, w) => {
        for (let seq = 0; !killed && Date.now() < deadline; seq++) {
          const path = `/${DIRS[(w + seq) % DIRS.length]}/c${cycle}-w${w}-${seq}.bin`
          const bytes = randomBytes(1024 + randomInt(3 * 1024))
          tried.push(path)
          try {
            await put(client, path, bytes)
          } catch {
            // before the kill, a put that timed out under load; after it, the voter is gone
            continue
          }
          acked.set(path, sha256Hex(bytes))
          lastAcked = path
          if (++count === 24) {
            killed = true
            voter.proc.kill('SIGKILL')
          }
        }
      }))
    } finally {
      await client.close()
    }
    assert.ok(killed, `cycle ${cycle}: 24 puts acknowledged within 30 s, so the voter was killed (${acked.size} acknowledged in all)`)
    assert.is(await voter.stop('SIGKILL'), null)
    nodes.delete('voter')
    assertUp(nodes, `cycle ${cycle}, after the voter was killed`)

    nodes.set('voter', await restart(sb, 'voter', voter, FAST, `after kill -9 in cycle ${cycle}`))
    // every put tried reads the same through both nodes (absent from both, or the same bytes), and
    // every acknowledged one is there
    let disagreement = ''
    await waitFor(async () => {
      assertUp(nodes, `cycle ${cycle}, after the voter restarted`)
      const [onVoter, onLearner] = await Promise.all([nodes.get('voter') as NodeHandle, learner].map(async (n) => await contents(sb, n, tried)))
      const wrong = tried.filter((path) => onVoter.get(path) !== onLearner.get(path) || (acked.has(path) && onVoter.get(path) !== acked.get(path)))
      disagreement = `${wrong.length} of ${tried.length} puts (${acked.size} acknowledged):\n` + wrong.slice(0, 20).map((path) =>
        `${path}: voter ${onVoter.get(path) as string}, learner ${onLearner.get(path) as string}, ${acked.has(path) ? `acknowledged ${acked.get(path) as string}` : 'not acknowledged'}`).join('\n')
      return wrong.length === 0 ? true : undefined
    }, 20_000, `cycle ${cycle}: both nodes to agree on every put after the voter's restart`).catch((err: Error) => {
      throw new Error(`${err.message}\n${disagreement}\nvoter stderr ends:\n${tail(nodes.get('voter') as NodeHandle)}\nlearner stderr ends:\n${tail(learner)}`)
    })
  }

  // and as the CLI shows it: the last put acknowledged before a kill
  const seen = await Promise.all([...nodes].map(async ([name, n]) => {
    const stat = await sb.run(['fs', 'stat', lastAcked, '--json', '--node', n.addr])
    assert.is(stat.code, 0, `fs stat through the ${name}: ${stat.stderr}`)
    const out = join(sb.dir, `${name}.out`)
    const get = await sb.run(['fs', 'get', lastAcked, out, '--node', n.addr])
    assert.is(get.code, 0, `fs get through the ${name}: ${get.stderr}`)
    return { stat: stat.json, sha256: sha256Hex(await readFile(out)) }
  }))
  assert.equal(seen[0], seen[1], 'fs stat and fs get are the same through both nodes')
  assert.is(seen[0].sha256, acked.get(lastAcked))
  for (const [name, n] of nodes) assert.is(await n.stop(), 0, `${name} stops cleanly:\n${tail(n)}`)
})

test.run()
