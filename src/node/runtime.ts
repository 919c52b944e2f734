import { randomUUID } from 'node:crypto'
import { mkdir, rename, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { logger } from '@libp2p/logger'
import { multiaddr } from '@multiformats/multiaddr'
import { ConfigError, type ExtentStore, type MetadataService, type ServiceRegistry } from '@dfs/api'
import { createHost, type Host } from '../net/host.js'
import { loadOrCreateKey } from '../net/keys.js'
import { peerNetwork } from '../net/peer-network.js'
import { RpcServer } from '../net/rpc/server.js'
import { Security } from '../security/index.js'
import { ExtentGc } from './extent-gc.js'
import { FileService } from './files.js'
import { clusterMethods } from './handlers/cluster.js'
import { fsMethods } from './handlers/fs.js'
import { DataDirLock } from './lock.js'

const log = logger('dfs:node')

export interface NodeRuntimeInit {
  dataDir: string
  /** Multiaddrs to listen on. */
  listen: string[]
  name?: string
  region?: string
  /** Name of the ExtentStore implementation (`level` unless a plugin provides another). */
  store?: string
  /** Name of the MetadataService implementation. */
  metadata?: string
  registry: ServiceRegistry
  /** PeerId that becomes the first Admin if this node creates a new cluster. */
  admin: string
  /** Bytes per extent of new files. */
  extentSize?: number
}

/** What `<data-dir>/node.json` holds while the node serves. */
export interface NodeInfo {
  id: string
  addrs: string[]
}

/**
 * One dfs node: owns the data dir lock, the identity key, the services the plugins provide, the
 * libp2p host and the RPC handlers, and starts and stops them in order.
 */
export class NodeRuntime {
  readonly dataDir: string
  readonly id: string
  readonly clusterId: string
  readonly #host: Host
  readonly #lock: DataDirLock
  readonly #store: ExtentStore
  readonly #metadata: MetadataService
  readonly #rpc: RpcServer
  #stopping: Promise<void> | undefined

  private constructor (parts: { dataDir: string, id: string, clusterId: string, host: Host, lock: DataDirLock, store: ExtentStore, metadata: MetadataService, rpc: RpcServer }) {
    this.dataDir = parts.dataDir
    this.id = parts.id
    this.clusterId = parts.clusterId
    this.#host = parts.host
    this.#lock = parts.lock
    this.#store = parts.store
    this.#metadata = parts.metadata
    this.#rpc = parts.rpc
  }

  static async start (init: NodeRuntimeInit): Promise<NodeRuntime> {
    await mkdir(init.dataDir, { recursive: true, mode: 0o700 })
    const lock = await DataDirLock.acquire(init.dataDir)
    const undo: Array<() => Promise<void>> = [async () => { await lock.release() }]
    try {
      const { key } = await loadOrCreateKey(join(init.dataDir, 'node.key'))
      // the registry throws UnknownService (naming what is installed) before anything is opened
      const makeStore = init.registry.get('extentStore', init.store ?? 'level')
      const makeMetadata = init.registry.get('metadata', init.metadata ?? 'local')
      let host: Host
      try {
        host = await createHost({ privateKey: key, listen: init.listen })
      } catch (err: any) {
        if (err?.name !== 'UnsupportedListenAddressesError') throw err
        throw new ConfigError(`cannot listen on ${init.listen.join(', ')}: the port is in use or the address is not on this machine`, { listen: init.listen })
      }
      undo.unshift(async () => { await host.stop() })
      const id = host.peerId.toString()

      const store = makeStore({ dir: join(init.dataDir, 'extents'), logger: logger('dfs:store') })
      await store.open()
      undo.unshift(async () => { await store.close() })
      const metadata = makeMetadata({ dir: join(init.dataDir, 'metadata'), nodeId: id, logger: logger('dfs:metadata'), network: peerNetwork(host) })
      await metadata.start()
      undo.unshift(async () => { await metadata.stop() })

      const addrs = host.getMultiaddrs().map((a) => a.toString())
      let cluster = await metadata.read((view) => view.cluster())
      if (cluster == null) {
        await metadata.propose({
          type: 'InitCluster',
          clusterId: randomUUID(),
          createdAtMs: Date.now(),
          admin: init.admin,
          member: { id, name: init.name ?? id.slice(-8), region: init.region ?? 'default', addrs }
        })
        cluster = await metadata.read((view) => view.cluster())
        log('created cluster %s with admin %s', cluster?.clusterId, init.admin)
      } else {
        const self = await metadata.read((view) => view.members().find((m) => m.id === id))
        const changed = self == null || self.addrs.join() !== addrs.join() ||
          (init.name != null && self.name !== init.name) || (init.region != null && self.region !== init.region)
        if (changed) {
          await metadata.propose({
            type: 'PutMember',
            member: { id, name: init.name ?? self?.name ?? id.slice(-8), region: init.region ?? self?.region ?? 'default', addrs }
          })
        }
      }
      if (cluster == null) throw new Error('metadata invariant broken: no cluster record after InitCluster')

      const gc = new ExtentGc(store)
      await gc.sweep(metadata)
      const files = new FileService({ nodeId: id, store, metadata, gc, extentSize: init.extentSize })
      const security = new Security({ nodeId: id, metadata })
      const rpc = new RpcServer({ host, authorize: async (peer, action, options) => { await security.authorize(peer, action, options) } })
      rpc.register(...fsMethods(files), ...clusterMethods({ nodeId: id, metadata }))
      await rpc.start()
      undo.unshift(async () => { await rpc.stop() })

      const runtime = new NodeRuntime({ dataDir: init.dataDir, id, clusterId: cluster.clusterId, host, lock, store, metadata, rpc })
      await runtime.#writeInfo()
      return runtime
    } catch (err) {
      for (const step of undo) await step().catch(() => {})
      throw err
    }
  }

  info (): NodeInfo {
    return {
      id: this.id,
      addrs: this.#host.getMultiaddrs().map((a) => {
        const s = a.toString()
        return s.includes('/p2p/') ? s : multiaddr(s).encapsulate(`/p2p/${this.id}`).toString()
      })
    }
  }

  async #writeInfo (): Promise<void> {
    const path = join(this.dataDir, 'node.json')
    const tmp = `${path}.${process.pid}.tmp`
    await writeFile(tmp, JSON.stringify(this.info(), null, 2) + '\n', { mode: 0o644 })
    await rename(tmp, path)
  }

  /** Stops serving, then closes services in reverse order of start. Safe to call more than once. */
  async stop (): Promise<void> {
    this.#stopping ??= (async () => {
      await unlink(join(this.dataDir, 'node.json')).catch(() => {})
      await this.#rpc.stop().catch((err) => { log.error('rpc stop: %s', err.message) })
      try { await this.#host.stop() } catch (err: any) { log.error('host stop: %s', err.message) }
      await this.#metadata.stop().catch((err) => { log.error('metadata stop: %s', err.message) })
      await this.#store.close().catch((err) => { log.error('store stop: %s', err.message) })
      await this.#lock.release()
    })()
    await this.#stopping
  }
}
