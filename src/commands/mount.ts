import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'
import { join, resolve } from 'node:path'
import { DfsCommand, consistencyFlag, timeoutFlag } from '../cli/base-command.js'
import { DfsClient, resolveNode } from '../client/index.js'
import { mount } from '../mount/index.js'
import { loadFuse } from '../mount/fuse-loader.js'
import { NodePool } from '../mount/failover.js'
import { ClusterFs } from '../mount/remote.js'
import { tuneHeapForStreaming } from '../cli/heap.js'

interface MountJson {
  mountpoint: string
  /** A dead mount left on the point by a crashed `dfs mount` was detached first. */
  recovered: boolean
  /** The node addresses the mount fails over between, in order. */
  nodes: string[]
  readOnly: boolean
}

export default class Mount extends DfsCommand<void> {
  static override summary = 'Mount the cluster on a directory through FUSE, in the foreground until SIGINT or SIGTERM'
  static override description = `Files are read in ranges (with read-ahead) and written through a local spool: a file opened for
writing is committed as one atomic put when it is closed or fsync'd, so other readers see the old
bytes or the new, never a mix (close-to-open consistency, as NFS). Attributes and listings are cached
for 1 s (a change made elsewhere shows within it). chmod and chown are accepted and ignored; utimens
is accepted and not kept (a file's mtime is its last put's). A rename across top-level directories
answers EXDEV (mv then copies). The mount fails over to another member when its node dies.
A dead mount left on MOUNTPOINT by a crash is detached first. Needs FUSE: /dev/fuse, fusermount
(Debian: fuse3) and libfuse 2 (Debian: libfuse2, libfuse-dev to build the binding).`

  static override examples = [
    '<%= config.bin %> mount /mnt/dfs --node 10.0.0.1:4001 --node 10.0.0.2:4001',
    '<%= config.bin %> mount /mnt/dfs --read-only --consistency stale'
  ]

  static override args = {
    mountpoint: Args.string({ required: true, description: 'an empty local directory to mount the cluster on' })
  }

  static override flags = {
    node: Flags.string({
      description: 'a node to talk to: host:port or a multiaddr; repeat it for more (default: $DFS_NODE, else the node of the default data dir). The members the cluster lists are added',
      multiple: true,
      helpGroup: 'CONNECTION'
    }),
    timeout: timeoutFlag,
    'read-only': Flags.boolean({ description: 'refuse every change (EROFS)', default: false }),
    consistency: consistencyFlag,
    tenant: Flags.string({ description: 'mount this tenant\'s namespace (cluster-wide admins; others see their own)' }),
    'spool-dir': Flags.string({ description: 'where files open for writing are spooled until their commit (default: the system\'s temporary directory; prefer a disk to tmpfs)' }),
    debug: Flags.boolean({ description: 'print libfuse\'s trace of every request on stderr', default: false, hidden: true })
  }

  async run (): Promise<void> {
    const { args, flags } = await this.parse(Mount)
    tuneHeapForStreaming()
    // the default identity is made (and said so) before any session opens; a named one must exist
    if (!this.identityNamed()) await this.identityKey()
    const init = {
      identityPath: this.identityPath(),
      dataDir: this.defaultDataDir(),
      timeoutMs: flags.timeout,
      knownClustersPath: join(this.config.configDir, 'known_clusters.json')
    }
    // no --node: the one DFS_NODE or the default data dir's node.json names
    const addrs = flags.node ?? [(await resolveNode({ dataDir: init.dataDir })).toString()]
    // without FUSE, say what to install before any connection is made
    const fuse = await loadFuse()
    let mounting = false
    const pool = new NodePool<DfsClient>({
      addrs,
      open: async (addr) => await DfsClient.open({ ...init, node: addr }),
      close: async (c) => { await c.close() }
    })
    try {
      const remote = new ClusterFs({ pool, consistency: flags.consistency, ...(flags.tenant !== undefined ? { tenant: flags.tenant } : {}) })
      // the first call proves the cluster answers (and its errors say why not) before anything is mounted
      pool.add(await remote.memberAddrs())
      mounting = true
      const mounted = await mount({ mountpoint: args.mountpoint, remote, readOnly: flags['read-only'], debug: flags.debug, fuse, ...(flags['spool-dir'] !== undefined ? { spoolParent: resolve(flags['spool-dir']) } : {}) })
      if (mounted.recovered) process.stderr.write(`dfs: detached a dead mount left on ${mounted.mountpoint}\n`)
      this.say(`dfs mounted on ${mounted.mountpoint}${flags['read-only'] ? ' (read-only)' : ''}; nodes:\n${pool.addrs.map((a) => `  ${a}`).join('\n')}\nCtrl-C unmounts`)
      // the one JSON document, printed once the mount serves
      if (this.jsonEnabled()) {
        this.logJson({ mountpoint: mounted.mountpoint, recovered: mounted.recovered, nodes: [...pool.addrs], readOnly: flags['read-only'] } satisfies MountJson)
      }
      const signal = await new Promise<string>((resolveSignal) => {
        process.once('SIGINT', () => { resolveSignal('SIGINT') })
        process.once('SIGTERM', () => { resolveSignal('SIGTERM') })
      })
      process.stderr.write(`dfs: ${signal}: unmounting ${mounted.mountpoint}\n`)
      const force = (): void => { process.stderr.write('dfs: stopping forcefully (the mount may be left dead: the next dfs mount detaches it)\n'); process.exit(1) }
      process.once('SIGINT', force)
      process.once('SIGTERM', force)
      const { uncommitted } = await mounted.unmount()
      if (uncommitted > 0) {
        process.stderr.write(`dfs: ${uncommitted} open file(s) could not be committed: their last writes are lost\n`)
        process.exitCode = 1
      }
      process.stderr.write('dfs: unmounted\n')
    } finally {
      // once mount() has the binding, it cleans up after it
      if (!mounting) await fuse.cleanup()
      await pool.close()
    }
  }
}
