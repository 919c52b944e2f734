import * as Flags from '@oclif/core/flags'
import { EVENTS_KEPT, EVENTS_LIMIT_DEFAULT, EVENTS_LIMIT_MAX, EVENTS_WAIT_MS_MAX } from '@dfs/api'
import type { ClusterEvent, ClusterEventsParams, ClusterEventsResult } from '@dfs/api'
import { ClientCommand } from '../../cli/base-command.js'
import type { DfsClient } from '../../client/index.js'

/** `dfs cluster events --json` without --follow. */
export interface EventsJson {
  events: ClusterEvent[]
}

/** Errors after which --follow asks again (the node restarting, a slow network); any other ends the command. */
const RETRIED = new Set(['Unavailable', 'NodeUnreachable', 'DeadlineExceeded', 'Aborted', 'NoQuorum'])
/** Pause before asking again after such an error, doubled up to FOLLOW_RETRY_MS_MAX. */
const FOLLOW_RETRY_MS = 500
const FOLLOW_RETRY_MS_MAX = 5000
/** Members' names are asked again for an event naming an unknown node, at most this often. */
const NAMES_REFRESH_MS_MIN = 10_000
/** Longest the names may take to come. */
const NAMES_TIMEOUT_MS = 3000

/** A byte count for people: 256 KiB, 3.5 MiB. */
function size (bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let v = bytes
  let u = 0
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++ }
  return `${u === 0 ? v : Number(v.toFixed(1))} ${units[u]}`
}

/** One event as a line for people; `node` names a member (its name, else its PeerId). */
export function formatEvent (e: ClusterEvent, node: (id: string) => string = (id) => id): string {
  const what = ((): string => {
    switch (e.kind) {
      case 'node.health': return `node ${node(e.node)} is ${e.to} (was ${e.from})`
      case 'node.joined': return `node ${node(e.node)} joined`
      case 'node.removed': return `node ${node(e.node)} was removed`
      case 'raft.leader': return e.leader === null
        ? `group ${e.group}: no leader (term ${e.term})`
        : `group ${e.group}: leader ${node(e.leader)} (term ${e.term})`
      case 'repair.started': return `repair of extent ${e.extent} (${size(e.bytes)}) onto ${node(e.target)} started`
      case 'repair.finished': return `repair of extent ${e.extent} (${size(e.bytes)}) onto ${node(e.target)} finished`
      case 'repair.failed': return `repair of extent ${e.extent} (${size(e.bytes)}) onto ${node(e.target)} failed: ${e.error}${e.message !== undefined ? `: ${e.message}` : ''}`
      case 'move.started': return `move of extent ${e.extent} (${size(e.bytes)}) from ${node(e.from)} to ${node(e.to)} started`
      case 'move.finished': return `move of extent ${e.extent} (${size(e.bytes)}) from ${node(e.from)} to ${node(e.to)} finished`
      case 'move.failed': return `move of extent ${e.extent} (${size(e.bytes)}) from ${node(e.from)} to ${node(e.to)} failed: ${e.error}${e.message !== undefined ? `: ${e.message}` : ''}`
      case 'move.cancelled': return `move of extent ${e.extent} (${size(e.bytes)}) from ${node(e.from)} to ${node(e.to)} cancelled: ${e.reason}`
      case 'scrub.error': return `scrub: this node's copy of extent ${e.extent} is ${e.error === 'NotFound' ? 'missing' : 'corrupt'}; ${e.repaired ? 'fetched again' : 'not repaired yet'}`
      default: {
        // a newer node's kind: shown as it came
        const other = e as { kind: string }
        return `${other.kind} ${JSON.stringify({ ...other, kind: undefined, seq: undefined, at: undefined })}`
      }
    }
  })()
  return `${e.at}  #${e.seq}  ${what}`
}

export default class ClusterEvents extends ClientCommand<EventsJson> {
  static override summary = 'Show what the node observes: health changes, leaders, repairs, moves'
  static override description = `Events are what the node you talk to (--node) observes, kept in its memory (the last ${EVENTS_KEPT}; gone when it restarts): members' health as its failure detector judges it (healthy, suspected, failed), members joining and leaving, the leader of each metadata group as it sees it, and the repairs, moves and scrub findings its replication service works on. Repairs and moves are run by the repair coordinator (the leader of the system group, see dfs cluster status), so only that node shows them.

--follow keeps printing new events as they happen, until Ctrl-C. With --json, --follow prints JSON lines (one event per line) rather than one document; without --follow, --json prints one document {"events": [...]}.`

  static override examples = [
    '<%= config.bin %> cluster events',
    '<%= config.bin %> cluster events --follow',
    '<%= config.bin %> cluster events --follow --json --node 127.0.0.1:4001'
  ]

  static override flags = {
    follow: Flags.boolean({ char: 'f', description: 'keep printing new events until Ctrl-C (with --json: one JSON document per line)' }),
    limit: Flags.integer({ description: `most recent events to show first (1–${EVENTS_LIMIT_MAX})`, default: EVENTS_LIMIT_DEFAULT, min: 1, max: EVENTS_LIMIT_MAX })
  }

  #names = new Map<string, string>()
  /** When the names were last asked for (Date.now()). */
  #namesAt = 0

  async run (): Promise<EventsJson> {
    const { flags } = await this.parse(ClusterEvents)
    const client = await this.client(flags)
    await this.#loadNames(client)
    const first = await client.call('cluster.events', { limit: flags.limit })
    if (!flags.follow) {
      for (const e of first.events) this.say(this.#line(e))
      return { events: first.events }
    }
    // --follow: until Ctrl-C, which aborts the call waiting and ends the command with status 0
    const stop = new AbortController()
    const onSignal = (): void => { stop.abort() }
    process.once('SIGINT', onSignal)
    process.once('SIGTERM', onSignal)
    try {
      this.#print(first, flags.json === true)
      // the node answers at the latest after waitMs: well within this command's deadline
      const waitMs = Math.min(EVENTS_WAIT_MS_MAX, Math.floor(client.timeoutMs * 0.75))
      let after = first.next
      let pause = FOLLOW_RETRY_MS
      while (!stop.signal.aborted) {
        const params: ClusterEventsParams = { after, waitMs, limit: EVENTS_LIMIT_MAX }
        let page: ClusterEventsResult
        try {
          page = await client.rpc.call('cluster.events', params, { timeoutMs: client.timeoutMs, signal: stop.signal })
        } catch (err) {
          if (stop.signal.aborted) break
          if (!RETRIED.has((err as Error)?.name)) throw err
          process.stderr.write(`dfs: events: ${(err as Error).name}: ${(err as Error).message.split('\n')[0]}; asking again\n`)
          await new Promise((resolve) => setTimeout(resolve, pause))
          pause = Math.min(FOLLOW_RETRY_MS_MAX, pause * 2)
          continue
        }
        pause = FOLLOW_RETRY_MS
        const unknown = page.events.some((e) => 'node' in e && !this.#names.has(e.node))
        if (unknown && Date.now() - this.#namesAt >= NAMES_REFRESH_MS_MIN) await this.#loadNames(client)
        this.#print(page, flags.json === true)
        after = page.next
      }
    } finally {
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
    }
    // the events are printed already: no closing document
    this.exit(0)
  }

  /** Prints a page as --follow does: lines for people, or JSON lines; events the node dropped are said on stderr. */
  #print (page: ClusterEventsResult, json: boolean): void {
    if (page.dropped !== undefined && page.dropped > 0) {
      process.stderr.write(`dfs: ${page.dropped} events were dropped before they were read (the node keeps the last ${EVENTS_KEPT})\n`)
    }
    for (const e of page.events) {
      if (json) process.stdout.write(JSON.stringify(e) + '\n')
      else this.say(this.#line(e))
    }
  }

  #line (e: ClusterEvent): string {
    return formatEvent(e, (id) => {
      const name = this.#names.get(id)
      // the name with the PeerId's tail (names need not be unique); a PeerId alone when unnamed
      return name === undefined ? id : `${this.shown(name)} (…${id.slice(-8)})`
    })
  }

  /** Members' names, to show with their PeerIds (none if the node cannot say: PeerIds alone then). */
  async #loadNames (client: DfsClient): Promise<void> {
    this.#namesAt = Date.now()
    try {
      // briefly: without a quorum the list cannot be read, and events must not wait for it
      const { nodes } = await client.rpc.call('cluster.nodes', {}, { timeoutMs: Math.min(client.timeoutMs, NAMES_TIMEOUT_MS) })
      for (const n of nodes) this.#names.set(n.id, n.name)
    } catch {
      // e.g. no quorum right now: events still show, by PeerId
    }
  }
}
