import { logger } from '@libp2p/logger'
import { Action } from '../security/index.js'
import type { Host } from '../net/host.js'
import { defineMethod } from '../net/rpc/define-method.js'
import type { RpcMethod } from '../net/rpc/types.js'
import type { ConnectionGater } from '@libp2p/interface'
import { ConfigError, InvalidArgumentError } from '@dfs/api'

const log = logger('dfs:node:faults')

/** The environment variable that, together with `node start --test-faults`, turns the fault hook on. */
export const TEST_FAULTS_ENV = 'DFS_TEST_FAULTS'

/**
 * Whether a starting node runs the test fault hook. Both keys are needed: the hidden `--test-faults`
 * flag AND `DFS_TEST_FAULTS=1`. An environment variable alone (inherited from a shell profile, a
 * container image, a service manager's defaults) never turns it on, and neither does a flag copied
 * from a test script. The flag without the variable is a ConfigError (the operator asked for
 * something that cannot happen); the variable without the flag is ignored, with `warn` told why.
 */
export function testFaultsEnabled (flag: boolean, env: NodeJS.ProcessEnv, warn: (line: string) => void): boolean {
  const fromEnv = env[TEST_FAULTS_ENV] === '1'
  if (flag && !fromEnv) {
    throw new ConfigError(`--test-faults needs ${TEST_FAULTS_ENV}=1 as well: the test fault hook is for test clusters only`, { flag: '--test-faults' })
  }
  if (!flag && env[TEST_FAULTS_ENV] != null && env[TEST_FAULTS_ENV] !== '') {
    warn(`${TEST_FAULTS_ENV} is set but ignored: the test fault hook needs --test-faults too`)
  }
  return flag && fromEnv
}

/**
 * Test-only fault injection, on only when `testFaultsEnabled` says so (a flag and an environment
 * variable; never otherwise); a node with it on says so in `cluster.status` (`testFaults: true`):
 * a network partition made by refusing, and hanging up, every connection to chosen peers. Each side
 * of a partition blocks the other side, as a real network split would.
 */
export class PartitionFault {
  readonly #blocked = new Set<string>()
  #host: Host | undefined

  /** The gater the host is built with: it consults the current blocked set on every connection. */
  gater (): ConnectionGater {
    const blocked = (peer: { toString: () => string }): boolean => this.#blocked.has(peer.toString())
    return {
      denyDialPeer: async (peer) => blocked(peer),
      denyInboundEncryptedConnection: async (peer) => blocked(peer),
      denyOutboundEncryptedConnection: async (peer) => blocked(peer)
    }
  }

  attach (host: Host): void {
    this.#host = host
  }

  /** Blocks exactly `peers` (an empty list heals) and hangs up existing connections to them. */
  async block (peers: string[]): Promise<void> {
    this.#blocked.clear()
    for (const p of peers) this.#blocked.add(p)
    log('blocking %o', peers)
    const host = this.#host
    if (host == null) return
    await Promise.all(host.getConnections()
      .filter((c) => this.#blocked.has(c.remotePeer.toString()))
      .map(async (c) => { await c.close().catch(() => { c.abort(new Error('partitioned')) }) }))
  }

  methods (): RpcMethod[] {
    return [defineMethod('test.partition', {
      action: Action.ClusterAdmin,
      kind: 'unary',
      params: (raw) => {
        const block = (raw as { block?: unknown } | null)?.block
        if (!Array.isArray(block) || block.length > 64 || block.some((p) => typeof p !== 'string' || p.length > 128)) {
          throw new InvalidArgumentError('test.partition takes { block: PeerId[] }')
        }
        return { block: block as string[] }
      },
      handle: async ({ params }) => {
        await this.block(params.block)
        return { blocked: params.block }
      }
    })]
  }
}

/**
 * Test-only crash points (on only with the fault hook, as PartitionFault): `test.crash` arms a
 * named point (a TransferPoint of a rename across metadata groups); the process then kills itself
 * with SIGKILL when it reaches that point, as a power cut there would stop it.
 */
export class CrashFault {
  #armed: string | undefined

  reached (point: string): void {
    if (this.#armed !== point) return
    log('crash point %s reached: killing this process', point)
    process.kill(process.pid, 'SIGKILL')
  }

  methods (): RpcMethod[] {
    return [defineMethod('test.crash', {
      action: Action.ClusterAdmin,
      kind: 'unary',
      params: (raw) => {
        const point = (raw as { point?: unknown } | null)?.point
        if (point !== null && (typeof point !== 'string' || !/^[a-z:-]{1,64}$/.test(point))) {
          throw new InvalidArgumentError('test.crash takes { point: string | null }')
        }
        return { point: point ?? null }
      },
      handle: async ({ params }) => {
        this.#armed = params.point ?? undefined
        return { armed: params.point }
      }
    })]
  }
}
