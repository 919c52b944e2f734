import { InvalidArgumentError } from './errors.js'
import { normalizePath } from './paths.js'

/**
 * Tenants are namespaces. A tenant's files live in the one metadata namespace under a top-level
 * directory whose name starts with TENANT_MARKER (U+0001, a control character): client paths refuse
 * control characters, so no path a client can send names a tenant's files directly, and the
 * default namespace's `/` hides these entries. A tenant user's `/x/y` is `/\u0001acme/x/y` inside.
 *
 * Because a path's shard is the hash of its first segment, all of a tenant's files, its record and
 * its usage counters live in one shard, so one data group owns them and a quota is checked in the
 * same deterministic step that commits a put (exact, whatever the concurrency). The price: one
 * tenant's metadata never spreads over several data groups.
 */
export const TENANT_MARKER = '\u0001'

/** Tenant names: lower-case letters, digits and dashes, starting with a letter or digit (like S3 bucket names). */
export const TENANT_NAME_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/

export function requireTenantName (name: unknown): string {
  if (typeof name !== 'string' || !TENANT_NAME_PATTERN.test(name)) {
    throw new InvalidArgumentError('a tenant name is 1 to 63 lower-case letters, digits and dashes, starting with a letter or digit',
      { tenant: typeof name === 'string' ? name.slice(0, 80) : typeof name })
  }
  return name
}

/** The internal path of a tenant's root directory (`/\u0001acme`). */
export function tenantRootPath (tenant: string): string {
  return `/${TENANT_MARKER}${requireTenantName(tenant)}`
}

/**
 * The internal path of `path` in `tenant`'s namespace (`null`: the default namespace, where the
 * path is itself). `path` is canonicalised first; `/` maps to the tenant's root.
 */
export function toInternalPath (tenant: string | null, path: string): string {
  const canonical = normalizePath(path)
  if (tenant === null) return canonical
  const root = tenantRootPath(tenant)
  return canonical === '/' ? root : root + canonical
}

/**
 * The namespace and client-visible path of an internal path: `{ tenant: null, path }` for the
 * default namespace, `{ tenant, path: '/' }` for a tenant's root.
 */
export function fromInternalPath (internal: string): { tenant: string | null, path: string } {
  if (!internal.startsWith('/' + TENANT_MARKER)) return { tenant: null, path: internal }
  const end = internal.indexOf('/', 1)
  const tenant = internal.slice(2, end < 0 ? undefined : end)
  return { tenant, path: end < 0 ? '/' : internal.slice(end) }
}

/** Whether a top-level entry's name is a tenant's root (hidden from the default namespace's `/`). */
export function isTenantRootName (name: string): boolean {
  return name.startsWith(TENANT_MARKER)
}
