import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { NoQuorumError, NodeUnreachableError, NotFoundError } from '@dfs/api'
import { NodePool, POOL_ADDRS_MAX, isNodeFailure } from '../../src/mount/failover.js'

/** Sessions are the address they talk to; `dead` addresses fail every call and `unreachable` ones fail to open. */
function pool (addrs: string[], dead: Set<string>, unreachable = new Set<string>()): { pool: NodePool<string>, opened: string[], closed: string[] } {
  const opened: string[] = []
  const closed: string[] = []
  const p = new NodePool<string>({
    addrs,
    open: async (addr) => {
      if (unreachable.has(addr)) throw new NodeUnreachableError(`cannot dial ${addr}`)
      opened.push(addr)
      return addr
    },
    close: async (s) => { closed.push(s) }
  })
  return { pool: p, opened, closed }
}

const call = (dead: Set<string>) => async (s: string): Promise<string> => {
  if (dead.has(s)) throw new NodeUnreachableError(`${s} died`)
  return `answer from ${s}`
}

test('a retried call moves to the next node when its node dies, and the session stays there', async () => {
  const dead = new Set(['a'])
  const { pool: p, opened, closed } = pool(['a', 'b', 'c'], dead)
  assert.is(await p.run(call(dead), { retry: true }), 'answer from b')
  assert.is(await p.run(call(dead), { retry: true }), 'answer from b')
  assert.equal(opened, ['a', 'b'])
  await new Promise((r) => setTimeout(r, 0))
  assert.equal(closed, ['a'])
  assert.is(p.current, 'b')
})

test('a call that may have happened is not retried: it fails, and the next call goes elsewhere', async () => {
  const dead = new Set(['a'])
  const { pool: p } = pool(['a', 'b'], dead)
  try {
    await p.run(call(dead), { retry: false })
    assert.unreachable()
  } catch (err) {
    assert.is((err as Error).name, 'NodeUnreachable')
  }
  assert.is(await p.run(call(dead), { retry: false }), 'answer from b')
})

test('the cluster\'s answers are not node failures: no retry, no switch', async () => {
  const { pool: p, opened } = pool(['a', 'b'], new Set())
  try {
    await p.run(async () => { throw new NotFoundError('no file') }, { retry: true })
    assert.unreachable()
  } catch (err) {
    assert.is((err as Error).name, 'NotFound')
  }
  assert.equal(opened, ['a'])
  assert.is(isNodeFailure(new NotFoundError('x')), false)
  assert.is(isNodeFailure(new NoQuorumError('x')), true, 'a minority node: another may have a quorum')
  assert.is(isNodeFailure(new Error('socket hang up')), true)
})

test('nodes that cannot be reached are skipped; every node down fails after a bounded number of tries', async () => {
  const { pool: p } = pool(['a', 'b', 'c'], new Set(), new Set(['a', 'b']))
  assert.is(await p.run(call(new Set()), { retry: false }), 'answer from c', 'opening is always retried')
  const dead = new Set(['a', 'b', 'c'])
  const all = pool(['a', 'b', 'c'], dead)
  let tries = 0
  try {
    await all.pool.run(async (s) => { tries++; return await call(dead)(s) }, { retry: true })
    assert.unreachable()
  } catch (err) {
    assert.is((err as Error).name, 'NodeUnreachable')
  }
  assert.is(tries, 3)
})

test('concurrent calls that see one failure move the pool once', async () => {
  const dead = new Set(['a'])
  const { pool: p, opened } = pool(['a', 'b', 'c'], dead)
  const answers = await Promise.all(Array.from({ length: 5 }, async () => await p.run(call(dead), { retry: true })))
  assert.equal(new Set(answers), new Set(['answer from b']))
  assert.equal(opened, ['a', 'b'])
})

test('learned addresses are added once, up to POOL_ADDRS_MAX', () => {
  const { pool: p } = pool(['a'], new Set())
  p.add(['a', 'b', 'b'])
  assert.equal(p.addrs, ['a', 'b'])
  p.add(Array.from({ length: 100 }, (_, i) => `n${i}`))
  assert.is(p.addrs.length, POOL_ADDRS_MAX)
})

test.run()
