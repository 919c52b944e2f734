import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { fsMethods } from '../../../src/node/handlers/fs.js'
import type { FileService } from '../../../src/node/files.js'
import type { RpcMethod } from '../../../src/net/rpc/types.js'

/** The params checks of the file RPCs (what the server accepts from any peer). */
const test = suite('node/handlers/fs')

const methods = new Map<string, RpcMethod>(fsMethods({} as unknown as FileService).map((m) => [m.name, m]))
const params = (method: string, raw: unknown): any => (methods.get(method) as RpcMethod).params(raw)
const refusal = (method: string, raw: unknown): string => {
  try {
    params(method, raw)
    return 'accepted'
  } catch (err) {
    return (err as Error).name
  }
}

test('the reads take consistency linearizable (the default) or stale; anything else is InvalidArgument', () => {
  for (const method of ['fs.get', 'fs.stat', 'fs.ls']) {
    assert.is(params(method, { path: '/a' }).consistency, 'linearizable', method)
    assert.is(params(method, { path: '/a', consistency: 'linearizable' }).consistency, 'linearizable', method)
    assert.is(params(method, { path: '/a', consistency: 'stale' }).consistency, 'stale', method)
    for (const bad of ['eventual', 'STALE', '', 1, true, ['stale'], { level: 'stale' }]) {
      assert.is(refusal(method, { path: '/a', consistency: bad }), 'InvalidArgument', `${method} ${JSON.stringify(bad)}`)
    }
  }
  const ls = params('fs.ls', { path: '/d', consistency: 'stale', after: 'b', limit: 5 })
  assert.equal(ls, { path: '/d', consistency: 'stale', after: 'b', limit: 5 })
})

test('fs.stat takes a page: extentsFrom >= 0 and version >= 1, integers, both optional', () => {
  assert.equal(params('fs.stat', { path: '/a' }), { path: '/a', consistency: 'linearizable' })
  assert.equal(params('fs.stat', { path: '/a', extentsFrom: 1000, version: 3 }), { path: '/a', consistency: 'linearizable', extentsFrom: 1000, version: 3 })
  for (const bad of [{ extentsFrom: -1 }, { extentsFrom: 1.5 }, { extentsFrom: '2' }, { version: 0 }, { version: 'x' }]) {
    assert.is(refusal('fs.stat', { path: '/a', ...bad }), 'InvalidArgument', JSON.stringify(bad))
  }
})

test.run()
