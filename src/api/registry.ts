import type {} from '@oclif/core/hooks'
import { UnknownServiceError } from './errors.js'
import type { ExtentStoreFactory } from './extent-store.js'
import type { MetadataServiceFactory } from './metadata.js'
import type { PlacementPolicyFactory } from './placement.js'
import type { RebalancePolicyFactory } from './rebalance.js'
import type { ReplicationServiceFactory } from './replication.js'

/** The kinds of service a plugin may provide, and the factory type of each. */
export interface ServiceKinds {
  extentStore: ExtentStoreFactory
  metadata: MetadataServiceFactory
  /** Where copies of an extent go; cluster-wide, selected by `dfs cluster policy set placement NAME`. */
  placement: PlacementPolicyFactory
  /** Which copies move when nodes are unevenly full; selected by `dfs cluster policy set rebalance NAME`. */
  rebalance: RebalancePolicyFactory
  /** Placement, replicated writes and reads, repair and rebalancing of extent copies (per node, `--replication NAME`). */
  replication: ReplicationServiceFactory
}

export type ServiceKind = keyof ServiceKinds

/** The name of the hook `dfs node start` fires, with a registry, before it builds its services. */
export const SERVICES_HOOK = 'dfs:services'

/** Named service implementations, filled by plugins through the `dfs:services` hook. */
export class ServiceRegistry {
  readonly #services = new Map<ServiceKind, Map<string, unknown>>()

  /** Registers an implementation; a second provider of the same kind and name replaces the first. */
  provide<K extends ServiceKind> (kind: K, name: string, factory: ServiceKinds[K]): void {
    if (!/^[a-z][a-z0-9-]{0,63}$/.test(name)) {
      throw new TypeError(`service name ${JSON.stringify(name)} must be lower-case letters, digits and dashes`)
    }
    let byName = this.#services.get(kind)
    if (byName == null) {
      byName = new Map()
      this.#services.set(kind, byName)
    }
    byName.set(name, factory)
  }

  /** The implementation registered as `name`; UnknownService lists the names that exist. */
  get<K extends ServiceKind> (kind: K, name: string): ServiceKinds[K] {
    const factory = this.#services.get(kind)?.get(name)
    if (factory == null) {
      const known = this.names(kind)
      throw new UnknownServiceError(`no ${kind} named ${JSON.stringify(name)} is installed` +
        (known.length > 0 ? ` (installed: ${known.join(', ')})` : ' (none is installed)'), { kind, name, known })
    }
    return factory as ServiceKinds[K]
  }

  names (kind: ServiceKind): string[] {
    return [...(this.#services.get(kind)?.keys() ?? [])].sort()
  }
}

/** Payload of the `dfs:services` hook. */
export interface ServicesHookOptions {
  registry: ServiceRegistry
}

declare module '@oclif/core/hooks' {
  interface Hooks {
    'dfs:services': { options: ServicesHookOptions, return: void }
  }
}
