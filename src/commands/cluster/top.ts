import * as Flags from '@oclif/core/flags'
import { InvalidArgumentError, escapeForTerminal, type ClusterOverview } from '@dfs/api'
import { ClientCommand } from '../../cli/base-command.js'
import { parseDuration } from '../../cli/duration.js'
import { formatBytes } from '../../cli/progress.js'

/** Shortest and longest refresh interval. */
const INTERVAL_MS_MIN = 200
const INTERVAL_MS_MAX = 3_600_000
/** Width of the fill and copies bars, characters. */
const BAR_WIDTH = 12

const HEALTH = { healthy: 'Healthy', suspected: 'Suspected', failed: 'Failed' } as const

/** ANSI: cursor home, clear to the end of the line, clear to the end of the screen, hide and show the cursor. */
const HOME = '\x1b[H'
const EOL = '\x1b[K'
const EOS = '\x1b[J'
const HIDE_CURSOR = '\x1b[?25l'
const SHOW_CURSOR = '\x1b[?25h'

function bar (fraction: number): string {
  const filled = Math.max(0, Math.min(BAR_WIDTH, Math.round(fraction * BAR_WIDTH)))
  return '#'.repeat(filled) + '.'.repeat(BAR_WIDTH - filled)
}

/** Rows as columns padded to their widest cell (the last column unpadded). */
function table (rows: string[][]): string[] {
  const widths: number[] = []
  for (const r of rows) r.forEach((c, i) => { widths[i] = Math.max(widths[i] ?? 0, c.length) })
  return rows.map((r) => r.map((c, i) => i === r.length - 1 ? c : c.padEnd(widths[i])).join('  ').trimEnd())
}

/**
 * The overview as lines of text for a terminal, every value from the cluster escaped (names,
 * regions and audit fields come from members and callers and must not drive the terminal).
 */
export function renderOverview (o: ClusterOverview, error?: string): string[] {
  const s = (v: unknown): string => escapeForTerminal(String(v))
  const names = new Map(o.nodes.map((n) => [n.id, n.name]))
  const nameOf = (id: string | null): string => id === null ? '(none)' : s(names.get(id) ?? id.slice(-8))
  const count = (h: keyof typeof HEALTH): number => o.nodes.filter((n) => n.health === h).length
  const self = o.nodes.find((n) => n.self)
  const lines: string[] = []
  lines.push(`dfs cluster ${s(o.clusterId)}  via ${self !== undefined ? s(self.name) : nameOf(o.node)}  ${new Date(o.timeMs).toLocaleTimeString()}` +
    (error !== undefined ? `  (refresh failed: ${s(error)})` : ''))
  lines.push(`nodes ${o.nodesTotal}: ${count('healthy')} healthy, ${count('suspected')} suspected, ${count('failed')} failed   ` +
    `leader ${nameOf(o.leader)}  term ${o.term}`)
  lines.push('')
  const groupsText = (gs: number[]): string => gs.map((g) => `g${g}`).join(',')
  lines.push(...table([
    ['NAME', 'HEALTH', 'REGION', 'ROLE', 'FILL', '', 'COPIES'],
    ...o.nodes.map((n) => {
      const role = [n.leads.length > 0 ? `leads ${groupsText(n.leads)}` : '', n.voterIn.length > 0 ? `votes ${groupsText(n.voterIn)}` : 'learner']
        .filter((x) => x !== '').join(' ')
      const fill = n.capacityBytes !== null && n.capacityBytes > 0 ? n.usedBytes / n.capacityBytes : 0
      return [
        s(n.name) + (n.self ? '*' : ''),
        HEALTH[n.health] + (n.draining ? ' (draining)' : ''),
        s(n.region),
        role,
        bar(fill),
        n.capacityBytes !== null ? `${(fill * 100).toFixed(fill < 0.1 ? 1 : 0)}% of ${formatBytes(n.capacityBytes)}` : `${formatBytes(n.usedBytes)} of ?`,
        `${n.copies} (${formatBytes(n.copyBytes)})`
      ]
    })
  ]))
  if (o.nodes.length < o.nodesTotal) lines.push(`… first ${o.nodes.length} of ${o.nodesTotal} nodes`)
  lines.push('')
  lines.push(...table([
    ['GROUP', 'KIND', 'SHARDS', 'LEADER', 'TERM', 'VOTERS'],
    ...o.groups.map((g) => [`g${g.group}`, g.kind, String(g.shards), nameOf(g.leader), String(g.term), g.voters.map(nameOf).join(',') + (g.learners.length > 0 ? ` +${g.learners.length} learners` : '')])
  ]))
  lines.push('')
  const r = o.replication
  if (r.error !== undefined) {
    lines.push(`replication: figures unavailable (${s(r.error)}); ${r.movesRecorded} moves recorded`)
  } else {
    lines.push(`replication factor ${r.replicationFactor}: ${r.extents} extents, ${r.underReplicated} under-replicated, ${r.missing} missing, ` +
      `${r.repairing} repairing, ${r.movesRecorded} moves recorded` + (r.movesInFlight !== undefined ? `, ${r.movesInFlight} moving` : ''))
  }
  if (o.audit !== null && o.audit.length > 0) {
    lines.push('')
    lines.push('recent audit entries (newest first)')
    lines.push(...table(o.audit.slice(-8).reverse().map((a) => [
      new Date(a.timeMs).toLocaleTimeString(), s(a.operation), s(a.resource), a.success ? 'ok' : s(a.error ?? 'failed'), `${s(a.role ?? 'stranger')} …${s(a.user.slice(-8))}`
    ])))
  }
  return lines
}

export default class ClusterTop extends ClientCommand<ClusterOverview> {
  static override summary = 'Watch the cluster: nodes, metadata groups and replication, refreshed in place'
  static override description = `On a terminal the view is redrawn in place every --interval (default 1 s) until Ctrl-C; when stdout is
not a terminal a block is printed per refresh. --once prints one view; --json prints one snapshot
(the cluster.overview answer) and exits. Audit entries are shown to callers that may read the audit
log. The same overview is on the status page of a node started with --http-listen.`

  static override examples = [
    '<%= config.bin %> cluster top',
    '<%= config.bin %> cluster top --interval 5',
    '<%= config.bin %> cluster top --json'
  ]

  static override flags = {
    interval: Flags.custom<number>({
      description: 'time between refreshes: seconds (2, 0.5) or a duration (500ms, 1m); from 200ms to 1h',
      default: 1000,
      defaultHelp: async () => '1s',
      // a bare number is seconds, as top's -d
      parse: async (input) => {
        const ms = /^\d+(\.\d+)?$/.test(input.trim()) ? Math.round(Number(input) * 1000) : parseDuration(input)
        if (!(ms >= INTERVAL_MS_MIN && ms <= INTERVAL_MS_MAX)) {
          throw new InvalidArgumentError(`--interval must be from ${INTERVAL_MS_MIN}ms to 1h, got ${JSON.stringify(input)}`, { interval: input })
        }
        return ms
      }
    })(),
    once: Flags.boolean({ description: 'print one view and exit', default: false })
  }

  async run (): Promise<ClusterOverview> {
    const { flags } = await this.parse(ClusterTop)
    const client = await this.client(flags)
    let overview = await client.call('cluster.overview', {})
    if (this.jsonEnabled()) return overview
    const tty = process.stdout.isTTY === true
    if (flags.once) {
      process.stdout.write(renderOverview(overview).join('\n') + '\n')
      return overview
    }

    // until Ctrl-C (or SIGTERM): a refresh that fails keeps the last view, saying why
    const stop = new AbortController()
    const onSignal = (): void => { stop.abort() }
    process.once('SIGINT', onSignal)
    process.once('SIGTERM', onSignal)
    if (tty) process.stdout.write(HIDE_CURSOR + '\x1b[2J')
    try {
      let error: string | undefined
      while (!stop.signal.aborted) {
        const lines = renderOverview(overview, error)
        if (tty) {
          const rows = process.stdout.rows ?? 0
          const shown = rows > 0 ? lines.slice(0, rows - 1) : lines
          process.stdout.write(HOME + shown.map((l) => l + EOL).join('\n') + '\n' + EOS)
        } else {
          process.stdout.write(lines.join('\n') + '\n\n')
        }
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, flags.interval)
          stop.signal.addEventListener('abort', () => { clearTimeout(t); resolve() }, { once: true })
        })
        if (stop.signal.aborted) break
        try {
          overview = await client.call('cluster.overview', {})
          error = undefined
        } catch (err) {
          if (stop.signal.aborted) break
          error = `${(err as Error).name}: ${(err as Error).message}`
        }
      }
    } finally {
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
      if (tty) process.stdout.write(SHOW_CURSOR)
    }
    return overview
  }
}
