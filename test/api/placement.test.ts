import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { hasRoomFor, imbalance, checkRebalanceRequest, IMBALANCE_THRESHOLD_DEFAULT, REBALANCE_MOVES_MAX_DEFAULT } from '@dfs/api'
import type { PlacementNode } from '@dfs/api'

const node = (id: string, usedBytes: number, extra: Partial<PlacementNode> = {}): PlacementNode =>
  ({ id, region: 'r', health: 'healthy', usedBytes, capacityBytes: 1000, fillLimit: 0.8, ...extra })

test('imbalance is (max fill − min fill) / mean fill, whatever the order of the nodes', () => {
  assert.ok(Math.abs(imbalance([node('a', 600), node('b', 300)]) - 0.3 / 0.45) < 1e-12)
  // fills, not bytes: 300 of 500 and 300 of 1000
  assert.ok(Math.abs(imbalance([node('a', 300, { capacityBytes: 500 }), node('b', 300)]) - 0.3 / 0.45) < 1e-12)
  const nodes = [0.1, 0.7, 0.3, 0.35, 0.9, 0.2].map((f, i) => node(`n${i}`, f * 1000))
  assert.is(imbalance(nodes), imbalance([...nodes].reverse()))
  assert.is(imbalance([node('a', 900)]), 0)
  assert.is(imbalance([node('a', 0), node('b', 0)]), 0)
  assert.is(imbalance([]), 0)
})

test('hasRoomFor counts the new bytes against the fill limit and wants a healthy node', () => {
  assert.ok(hasRoomFor(node('a', 700), 100))
  assert.not.ok(hasRoomFor(node('a', 700), 101))
  assert.not.ok(hasRoomFor(node('a', 0, { health: 'suspected' }), 1))
  assert.not.ok(hasRoomFor(node('a', 0, { health: 'failed' }), 1))
  assert.not.ok(hasRoomFor(node('a', 900), 0)) // already past its limit
})

test('a rebalance request gets the documented defaults', () => {
  const checked = checkRebalanceRequest({ nodes: [node('a', 1)], extents: [{ id: 'x', size: 1, replicas: ['a'] }] })
  assert.is(checked.imbalanceThreshold, IMBALANCE_THRESHOLD_DEFAULT)
  assert.is(checked.movesMax, REBALANCE_MOVES_MAX_DEFAULT)
  assert.equal([...checked.nodes.keys()], ['a'])
})

test.run()
