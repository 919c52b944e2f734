import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { toInternalPath, type MetadataView, type TenantInfo } from '@dfs/api'
import { tenantBytesLeft } from '../../src/node/files.js'

/** The early quota check of a put (the commit checks again, exactly; this one only refuses sooner). */
const test = suite('security/quota early check')

function view (tenant: TenantInfo | undefined, files: Record<string, number> = {}): MetadataView {
  return {
    tenant: (name: string) => name === tenant?.name ? tenant : undefined,
    getFile: (path: string) => path in files ? { path, size: files[path] } : undefined
  } as unknown as MetadataView
}

const acme = (over: Partial<TenantInfo> = {}): TenantInfo =>
  ({ name: 'acme', quotaBytes: 1000, quotaFiles: 2, requestRate: null, usedBytes: 600, usedFiles: 1, ...over })

const refusal = (fn: () => unknown): string => {
  try {
    fn()
    return 'ok'
  } catch (err) {
    return (err as Error).name
  }
}

test('outside tenants and without a byte quota nothing is limited', () => {
  assert.is(tenantBytesLeft(view(undefined), '/docs/a', 10 ** 12), Infinity)
  assert.is(tenantBytesLeft(view(acme({ quotaBytes: null })), toInternalPath('acme', '/a'), 10 ** 12), Infinity)
})

test('bytes: the declared size up to what is left is accepted, one more is QuotaExceeded; a replacement counts the difference', () => {
  const path = toInternalPath('acme', '/a')
  assert.is(tenantBytesLeft(view(acme()), path, 400), 400)
  assert.is(refusal(() => tenantBytesLeft(view(acme()), path, 401)), 'QuotaExceeded')
  assert.is(tenantBytesLeft(view(acme(), { [path]: 600 }), path, 1000), 1000, 'replacing the only file may use the whole quota')
  // over a lowered quota, a replacement may shrink but not grow
  assert.is(tenantBytesLeft(view(acme({ quotaBytes: 100 }), { [path]: 600 }), path, 0), 600)
})

test('files: one more file than the quota is refused, a replacement is not', () => {
  const full = acme({ usedFiles: 2 })
  assert.is(refusal(() => tenantBytesLeft(view(full), toInternalPath('acme', '/new'), 0)), 'QuotaExceeded')
  assert.is(refusal(() => tenantBytesLeft(view(full, { [toInternalPath('acme', '/old')]: 10 }), toInternalPath('acme', '/old'), 0)), 'ok')
})

test('a put into a tenant that does not exist is NotFound', () => {
  assert.is(refusal(() => tenantBytesLeft(view(undefined), toInternalPath('gone', '/a'), 0)), 'NotFound')
})

test.run()
