import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Lifecycle } from '../../src/node/lifecycle.js'

test('parts stop in reverse order of start, once, also when one of them fails to stop', async () => {
  const life = new Lifecycle()
  const stopped: string[] = []
  life.started('lock', () => { stopped.push('lock') })
  life.started('host', async () => { stopped.push('host') })
  life.started('metadata', async () => { stopped.push('metadata'); throw new Error('disk gone') })
  life.started('rpc', () => { stopped.push('rpc') })
  assert.equal(life.names, ['lock', 'host', 'metadata', 'rpc'])
  await Promise.all([life.stop(), life.stop()])
  await life.stop()
  assert.equal(stopped, ['rpc', 'metadata', 'host', 'lock'])
})

test('a start that fails half-way stops exactly what had started', async () => {
  const life = new Lifecycle()
  const stopped: string[] = []
  const start = async (): Promise<void> => {
    life.started('lock', () => { stopped.push('lock') })
    life.started('store', () => { stopped.push('store') })
    throw new Error('cannot listen')
  }
  await start().catch(async () => { await life.stop() })
  assert.equal(stopped, ['store', 'lock'])
  assert.throws(() => { life.started('late', () => {}) }, /while the node is stopping/)
})

test.run()
