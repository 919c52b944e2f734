import * as Flags from '@oclif/core/flags'
import { resolve } from 'node:path'
import { clientName, ConfigError, NODE_NAME_BYTES_MAX, EXTENT_SIZE_MAX, REPAIR_DELAY_MS_DEFAULT, ServiceRegistry, SERVICES_HOOK } from '@dfs/api'
import { DfsCommand } from '../../cli/base-command.js'
import { parseAddress } from '../../net/address.js'
import { peerIdString } from '../../net/keys.js'
import { NodeRuntime } from '../../node/runtime.js'
import { readJoinTokenFile } from '../../security/join-token.js'
import { testFaultsEnabled } from '../../node/faults.js'
import { FAILURE_TIMEOUT_MS_DEFAULT, HEARTBEAT_MS_DEFAULT } from '../../membership/constants.js'
import { tuneHeapForStreaming } from '../../cli/heap.js'

/** Longest node name and region in UTF-8 bytes (a heartbeat carries at most 64 characters of each). */

/** The one JSON document of `node start --json`, printed as soon as the node serves. */
interface StartJson { id: string, addrs: string[], dataDir: string, clusterId: string, s3?: string, metrics?: string, http?: string }

/** Runs until a signal; its JSON document is printed when the node starts serving, not when it returns. */
export default class NodeStart extends DfsCommand<void> {
  static override summary = 'Run a dfs node in the foreground until SIGINT or SIGTERM'
  static override description = `On an empty data dir the node creates a new cluster, and the identity of the user who started it
(see \`dfs identity show\`) becomes its first Admin; given --peers and a join token it joins an existing cluster
instead. The token comes from DFS_JOIN_TOKEN or from a file only its owner can read (--join-token-file), never
from the command line, where other users see it (ps). Once it serves requests it writes <data-dir>/node.json with its PeerId and addresses; the CLI finds
it there by default.`

  static override examples = [
    '<%= config.bin %> node start',
    'DFS_JOIN_TOKEN=dfs-join.… <%= config.bin %> node start --data-dir ./n2 --listen 127.0.0.1:7401 --peers 127.0.0.1:7400',
    '<%= config.bin %> node start --data-dir ./n3 --listen 127.0.0.1:7402 --peers 127.0.0.1:7400 --join-token-file ./token (mode 0600)',
    '<%= config.bin %> node start --data-dir /var/lib/dfs --listen 0.0.0.0:7400 --name n1 --region eu-west'
  ]

  static override flags = {
    'data-dir': Flags.string({ description: 'where the node keeps its key, metadata and extents (default: $DFS_DATA_DIR, else the user data dir)' }),
    listen: Flags.string({ description: 'address to listen on: host:port or a multiaddr; repeat or comma-separate for several', default: ['127.0.0.1:7400'], multiple: true, delimiter: ',' }),
    name: Flags.string({ description: 'human-readable node name (default: the end of its PeerId)' }),
    region: Flags.string({ description: 'region or failure domain of this node (default: "default", or what the node had)' }),
    store: Flags.string({ description: 'extent store implementation, as provided by a plugin', default: 'level' }),
    metadata: Flags.string({ description: 'metadata service implementation: raft (replicated; the default) or local (one node, no joining)', default: 'raft', hidden: true }),
    peers: Flags.string({ description: 'addresses of cluster members (host:port or multiaddrs): a new node joins through them, a restarted one uses them to find the cluster', multiple: true, delimiter: ',' }),
    'join-token-file': Flags.string({ description: 'file holding the join token of a new node, readable by its owner only (see dfs cluster token create; or set DFS_JOIN_TOKEN)' }),
    // discouraged (any user sees a command line in ps): kept so scripts that pass it keep working
    'join-token': Flags.string({ description: 'join token for a new node; discouraged: use DFS_JOIN_TOKEN or --join-token-file', env: 'DFS_JOIN_TOKEN', hidden: true }),
    'heartbeat-ms': Flags.integer({ description: 'interval of membership heartbeats', default: HEARTBEAT_MS_DEFAULT, min: 50 }),
    'repair-delay-ms': Flags.integer({
      description: 'how long a member may stay failed before its extent copies are re-created on other nodes (default 10 minutes: a reboot or a short network cut costs no copying)',
      default: REPAIR_DELAY_MS_DEFAULT,
      min: 0
    }),
    // tests: how long freed copies stay before replicas delete them (default 10 s)
    'release-grace-ms': Flags.integer({ description: 'how long copies of a freed extent stay before their holders delete them', min: 0, hidden: true }),
    'move-bytes-per-second': Flags.integer({
      description: 'throttle of rebalance and drain moves while this node coordinates them (default 32 MiB/s: room is left for clients and repair)',
      min: 1
    }),
    replication: Flags.string({ description: 'name of the replication service (a plugin may provide another)', default: 'default', hidden: true }),
    'metadata-snapshot-every': Flags.integer({
      description: 'metadata operations each Raft group applies between snapshots of its state; a snapshot compacts the log before it (default 10000, like etcd\'s --snapshot-count; a group also snapshots after 32 MiB of entries). Fewer means less log to replay at a restart and to hold in memory, and lagging members catch up by snapshot sooner',
      min: 2
    }),
    'metadata-groups': Flags.integer({ description: 'Raft groups that own the metadata shards of a cluster this node creates', min: 1, max: 16, hidden: true }),
    'failure-timeout-ms': Flags.integer({ description: 'silence after which a member is considered failed', default: FAILURE_TIMEOUT_MS_DEFAULT, min: 200 }),
    'test-faults': Flags.boolean({ description: 'test clusters only: serve test.partition (needs DFS_TEST_FAULTS=1 too)', hidden: true, default: false }),
    's3-listen': Flags.string({ description: 'serve the S3 API on this host:port (port 0: a free one; see `dfs s3 key create`)' }),
    's3-domain': Flags.string({ description: 'root domain of virtual-host-style S3 requests (BUCKET.DOMAIN); repeat for several', multiple: true, delimiter: ',' }),
    'metrics-listen': Flags.string({ description: 'serve Prometheus metrics at http://HOST:PORT/metrics (port 0: a free one)' }),
    'http-listen': Flags.string({
      description: 'serve the status page at http://HOST:PORT/ (port 0: a free one): a read-only view with no login, so keep it on loopback ' +
        '(the default host) or behind a firewall; it serves /metrics too when --metrics-listen is given'
    }),
    'http-audit': Flags.boolean({ description: 'show the newest audit entries (callers, operations, paths) on the status page', default: false }),
    's3-region': Flags.string({ description: 'region the S3 API names in GetBucketLocation (signatures of any region are accepted)', default: 'us-east-1' }),
    'extent-size': Flags.integer({ description: 'bytes per extent of new files', default: EXTENT_SIZE_MAX, min: 1, max: EXTENT_SIZE_MAX, hidden: true })
  }

  async run (): Promise<void> {
    const { flags } = await this.parse(NodeStart)
    tuneHeapForStreaming()
    const dataDir = resolve(flags['data-dir'] ?? this.defaultDataDir())
    const listen = flags.listen.map((a) => parseAddress(a).toString())
    // names travel in heartbeats and member records and are printed by every CLI: checked like a client's names
    const name = flags.name === undefined ? undefined : clientName(flags.name, '--name', { bytesMax: NODE_NAME_BYTES_MAX })
    const region = flags.region === undefined ? undefined : clientName(flags.region, '--region', { bytesMax: NODE_NAME_BYTES_MAX })

    const registry = new ServiceRegistry()
    const hook = await this.config.runHook(SERVICES_HOOK, { registry })
    for (const failure of hook.failures) {
      process.stderr.write(`dfs: plugin ${failure.plugin.name} failed to register its services: ${failure.error.message}\n`)
    }
    const userKey = await this.identityKey()

    const node = await NodeRuntime.start({
      dataDir,
      listen,
      name,
      region,
      store: flags.store,
      metadata: flags.metadata,
      registry,
      admin: peerIdString(userKey),
      extentSize: flags['extent-size'],
      peers: flags.peers,
      joinToken: joinToken(flags['join-token-file'], flags['join-token']),
      heartbeatMs: flags['heartbeat-ms'],
      repairDelayMs: flags['repair-delay-ms'],
      releaseGraceMs: flags['release-grace-ms'],
      moveBytesPerSecond: flags['move-bytes-per-second'],
      replication: flags.replication,
      failureTimeoutMs: flags['failure-timeout-ms'],
      metadataSnapshotEvery: flags['metadata-snapshot-every'],
      metadataGroups: flags['metadata-groups'],
      s3: flags['s3-listen'] === undefined ? undefined : s3Listen(flags['s3-listen'], flags['s3-domain'], flags['s3-region']),
      metrics: flags['metrics-listen'] === undefined ? undefined : hostPort(flags['metrics-listen'], '--metrics-listen'),
      http: flags['http-listen'] === undefined ? undefined : { ...httpListen(flags['http-listen'], flags['metrics-listen']), audit: flags['http-audit'] },
      testFaults: testFaultsEnabled(flags['test-faults'], process.env, (line) => { process.stderr.write(`dfs: ${line}\n`) })
    })
    const info = node.info()
    this.say(`dfs node ${info.id}\ncluster ${node.clusterId}\ndata dir ${dataDir}\nlistening on\n${info.addrs.map((a) => `  ${a}`).join('\n')}` +
      (info.s3 !== undefined ? `\nS3 API on http://${info.s3}` : '') +
      (info.metrics !== undefined ? `\nmetrics on http://${info.metrics}/metrics` : '') +
      (info.http !== undefined ? `\nstatus page on http://${info.http}/` : ''))
    // the one JSON document, printed as soon as the node serves; oclif prints nothing more
    if (this.jsonEnabled()) {
      this.logJson({
        id: info.id, addrs: info.addrs, dataDir, clusterId: node.clusterId, ...(info.s3 !== undefined ? { s3: info.s3 } : {}), ...(info.metrics !== undefined ? { metrics: info.metrics } : {}),
        ...(info.http !== undefined ? { http: info.http } : {})
      } satisfies StartJson)
    }

    const signal = await new Promise<string>((resolveSignal) => {
      process.once('SIGINT', () => { resolveSignal('SIGINT') })
      process.once('SIGTERM', () => { resolveSignal('SIGTERM') })
    })
    process.stderr.write(`dfs: ${signal}: stopping\n`)
    const force = (): void => { process.stderr.write('dfs: stopping forcefully\n'); process.exit(1) }
    process.once('SIGINT', force)
    process.once('SIGTERM', force)
    await node.stop()
    process.stderr.write('dfs: stopped\n')
  }
}

/**
 * How to get the join token: from --join-token-file, else DFS_JOIN_TOKEN (or the discouraged
 * --join-token), trimmed; one source only. Given twice is refused at once; the file is read only when
 * the node joins (a restarting member may have deleted it).
 */
function joinToken (file: string | undefined, given: string | undefined): () => Promise<string | undefined> {
  if (file !== undefined && given !== undefined) {
    throw new ConfigError('the join token is given twice: use DFS_JOIN_TOKEN or --join-token-file, not both')
  }
  return async () => {
    if (file !== undefined) return await readJoinTokenFile(resolve(file))
    const token = given?.trim()
    return token === '' ? undefined : token
  }
}

/** HOST:PORT (`[v6]:PORT` too) of a listener flag. */
function hostPort (address: string, flag: string): { host: string, port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(address.trim())
  const port = m === null ? NaN : Number(m[3])
  if (m === null || !(port >= 0 && port <= 65535)) throw new ConfigError(`${flag} must be host:port, got ${JSON.stringify(address)}`)
  return { host: m[1] ?? m[2], port }
}

/** --http-listen HOST:PORT (a bare :PORT or PORT: on loopback); not the metrics listener's own address. */
function httpListen (address: string, metrics: string | undefined): { host: string, port: number } {
  const a = address.trim()
  const listen = hostPort(/^:?\d{1,5}$/.test(a) ? `127.0.0.1:${a.replace(/^:/, '')}` : a, '--http-listen')
  const m = metrics === undefined ? undefined : hostPort(metrics, '--metrics-listen')
  if (m !== undefined && listen.port !== 0 && m.port === listen.port && m.host === listen.host) {
    throw new ConfigError('--http-listen and --metrics-listen name the same address: give them different ports (the status page serves /metrics as well)')
  }
  return listen
}

/** --s3-listen HOST:PORT (and its domains and region) as the runtime takes them. */
function s3Listen (address: string, domains: string[] | undefined, region: string): { host: string, port: number, domains: string[], region: string } {
  const { host, port } = hostPort(address, '--s3-listen')
  const names = (domains ?? []).map((d) => d.trim().toLowerCase()).filter((d) => d !== '')
  for (const d of names) {
    if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(d)) throw new ConfigError(`--s3-domain ${JSON.stringify(d)} is not a domain name`)
  }
  if (!/^[a-z0-9-]{1,64}$/.test(region)) throw new ConfigError(`--s3-region ${JSON.stringify(region)} is not a region name`)
  return { host, port, domains: names, region }
}
