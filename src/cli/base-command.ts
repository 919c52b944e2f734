import { Command } from '@oclif/core/command'
import * as Errors from '@oclif/core/errors'
import * as Flags from '@oclif/core/flags'
import type * as Interfaces from '@oclif/core/interfaces'
import { join } from 'node:path'
import { CONSISTENCY_DEFAULT, CONSISTENCY_LEVELS, DfsError, escapeForTerminal, type Consistency } from '@dfs/api'
import type { PrivateKey } from '@libp2p/interface'
import type { DfsClient } from '../client/index.js'
import { CALL_TIMEOUT_MS_DEFAULT } from '../net/constants.js'
import { loadClientModule, saveClientCodeCache, type ClientModule } from './client-module.js'

export type BaseFlags<T extends typeof Command> = Interfaces.InferredFlags<typeof DfsCommand['baseFlags'] & T['flags']>

/**
 * The one base of every dfs command. `--json` makes the command print exactly one JSON document on
 * stdout (its result, or `{"error": …}`); without it, human output. Errors print one line on stderr
 * and exit non-zero; stack traces only with DEBUG=dfs:*.
 */
export abstract class DfsCommand<T> extends Command {
  static override enableJsonFlag = true

  abstract override run (): Promise<T>

  /**
   * Prints human output; silent in JSON mode. Control and bidi formatting characters are shown as
   * `\u{…}` (names and messages come from servers, which must not drive the terminal); the line
   * breaks of the command's own layout are kept, so a value that may hold one goes through `shown`.
   */
  protected say (text: string): void {
    if (!this.jsonEnabled()) this.log(escapeForTerminal(text, { keepNewlines: true }))
  }

  /** A value from a server as one line of human output: every control and bidi character escaped, `\n` too. */
  protected shown (value: unknown): string {
    return escapeForTerminal(String(value))
  }

  /** The data dir a command uses by default: DFS_DATA_DIR, else the user's data dir for dfs. */
  protected defaultDataDir (): string {
    return process.env.DFS_DATA_DIR ?? this.config.dataDir
  }

  /** The CLI user's key file: DFS_IDENTITY, else identity.key in the user's config dir. */
  protected identityPath (): string {
    return this.identityNamed() ? process.env.DFS_IDENTITY as string : join(this.config.configDir, 'identity.key')
  }

  /** Whether DFS_IDENTITY names the key file: then a missing file is an error, never a new identity. */
  protected identityNamed (): boolean {
    return process.env.DFS_IDENTITY != null && process.env.DFS_IDENTITY !== ''
  }

  /**
   * The CLI user's key: DFS_IDENTITY's must exist (ConfigError naming `dfs identity create`); the
   * default one is created on first use, with a line on stderr saying where.
   */
  protected async identityKey (): Promise<PrivateKey> {
    return await this.loadIdentity(await import('../net/keys.js'))
  }

  /**
   * identityKey with the key helpers of `keys`: a client session passes the client bundle's (see
   * client-module.ts), so the key and the libp2p host that uses it come from one copy of libp2p.
   */
  protected async loadIdentity (keys: Pick<ClientModule, 'loadIdentityKey' | 'peerIdString'>): Promise<PrivateKey> {
    const path = this.identityPath()
    const { key, created } = await keys.loadIdentityKey(path, { create: !this.identityNamed() })
    if (created) process.stderr.write(`dfs: created a new identity ${keys.peerIdString(key)} in ${path}\n`)
    return key
  }

  protected override async catch (err: Error & { code?: string, oclif?: { exit?: number }, details?: unknown }): Promise<void> {
    // this.exit() and oclif's own control flow travel as errors: let them through
    if (err.code === 'EEXIT') throw err
    const parseError = isUsageError(err)
    const name = err instanceof DfsError || (err.name != null && err.name !== 'Error' && err.name !== 'CLIError')
      ? err.name
      : parseError ? 'UsageError' : 'Error'
    process.exitCode = parseError ? 2 : 1
    if (this.jsonEnabled()) {
      this.logJson({ error: { name, message: err.message, ...(err.details != null ? { details: err.details } : {}) } })
    }
    // a remote error's name and message are the server's words: escaped like all human output
    const message = escapeForTerminal((err.message ?? String(err)).split('\n')[0])
    process.stderr.write(`dfs: ${escapeForTerminal(name)}: ${message}\n`)
    if (/(^|,)\s*dfs[:*]/.test(process.env.DEBUG ?? '') && err.stack != null) process.stderr.write(`${err.stack}\n`)
  }
}

/**
 * Whether oclif's parser refused the command line (an unknown flag, a missing or unexpected argument, a
 * value not among the options): its errors are CLIErrors that carry the parse (`CLIParseError`, not
 * exported by @oclif/core), and they exit 2.
 */
function isUsageError (err: Error & { oclif?: { exit?: number } }): boolean {
  return err instanceof Errors.CLIError && ('parse' in err || err.oclif?.exit === 2)
}

export const nodeFlag = Flags.string({
  description: 'node to talk to: host:port or a multiaddr (default: $DFS_NODE, else the node of the default data dir)',
  helpGroup: 'CONNECTION'
})

export const timeoutFlag = Flags.integer({
  description: 'deadline in ms for connecting and for each request',
  default: CALL_TIMEOUT_MS_DEFAULT,
  min: 1,
  helpGroup: 'CONNECTION'
})

/** For the commands that read files (fs get, ls, stat). */
export const consistencyFlag = Flags.option({
  description: 'linearizable: see every write committed before the read (needs a quorum of the cluster); ' +
    'stale: the node\'s applied state, which may lag the cluster but is served with no quorum reachable (e.g. in a minority partition)',
  options: CONSISTENCY_LEVELS,
  default: CONSISTENCY_DEFAULT
})()

/** A command that talks to a running node as the CLI user's identity. */
export abstract class ClientCommand<T> extends DfsCommand<T> {
  static override baseFlags = {
    node: nodeFlag,
    timeout: timeoutFlag
  }

  #client: DfsClient | undefined

  /** Connects to the node chosen by --node / DFS_NODE / the default data dir's node.json. */
  protected async client (flags: { node?: string, timeout: number }): Promise<DfsClient> {
    // loaded here, not at the top: a command that never connects (--help, usage errors) skips libp2p
    const client = await loadClientModule({ cacheDir: this.config.cacheDir })
    // the default identity is made (and said so) here; a named one must exist (see identityKey)
    if (this.#client == null && !this.identityNamed()) await this.loadIdentity(client)
    this.#client ??= await client.DfsClient.open({
      node: flags.node,
      identityPath: this.identityPath(),
      dataDir: this.defaultDataDir(),
      timeoutMs: flags.timeout,
      knownClustersPath: join(this.config.configDir, 'known_clusters.json')
    })
    return this.#client
  }

  /**
   * The consistency a node says it served (one that predates the option served linearizable), with
   * a line on stderr when it was stale and the output is for a human; JSON output carries the field.
   */
  protected served (consistency: Consistency | undefined): Consistency {
    const served = consistency ?? 'linearizable'
    if (served === 'stale' && !this.jsonEnabled()) {
      process.stderr.write('dfs: stale read: served from this node\'s applied state, which may lag the cluster\n')
    }
    return served
  }

  protected override async finally (err: Error | undefined): Promise<unknown> {
    await this.#client?.close().catch(() => {})
    await saveClientCodeCache()
    return await super.finally(err)
  }
}
