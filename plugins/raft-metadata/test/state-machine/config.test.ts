import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { CLUSTER_CONFIG_DEFAULTS } from '@dfs/api'
import type { MetadataOp } from '@dfs/api'
import { MetadataStateMachine } from '../../src/state-machine/index.js'

test('settings start at their defaults, SetConfig changes one, a snapshot keeps it', () => {
  const sm = new MetadataStateMachine({ kind: 'system' })
  assert.equal(sm.config(), CLUSTER_CONFIG_DEFAULTS)
  assert.ok(sm.apply({ type: 'SetConfig', key: 'replicationFactor', value: 2 }, 1).ok)
  assert.ok(sm.apply({ type: 'SetConfig', key: 'placementPolicy', value: 'region' }, 2).ok)
  assert.ok(sm.apply({ type: 'SetConfig', key: 'imbalanceThreshold', value: 0.25 }, 3).ok)
  assert.equal(sm.config(), { ...CLUSTER_CONFIG_DEFAULTS, replicationFactor: 2, placementPolicy: 'region', imbalanceThreshold: 0.25 })
  const back = MetadataStateMachine.restore(sm.snapshot(), { kind: 'system' })
  assert.equal(back.config(), sm.config())
  // setting a default again drops the override (equal states, equal snapshots)
  assert.ok(sm.apply({ type: 'SetConfig', key: 'replicationFactor', value: 3 }, 4).ok)
  assert.is(sm.config().replicationFactor, 3)
})

test('bad settings are refused and change nothing', () => {
  const sm = new MetadataStateMachine({ kind: 'system' })
  const bad: unknown[] = [
    { key: 'replicationFactor', value: 0 }, { key: 'replicationFactor', value: 17 }, { key: 'replicationFactor', value: '3' },
    { key: 'placementPolicy', value: 'Bad Name' }, { key: 'rebalancePolicy', value: 7 },
    { key: 'imbalanceThreshold', value: 0 }, { key: 'imbalanceThreshold', value: Number.NaN },
    { key: 'fillLimit', value: 1.5 }, { key: 'nope', value: 1 }, { key: '__proto__', value: 1 }
  ]
  bad.forEach((b, i) => {
    const r = sm.apply({ type: 'SetConfig', ...(b as object) } as MetadataOp, i + 1)
    assert.is(!r.ok && r.error.name, 'InvalidArgument', JSON.stringify(b))
  })
  assert.equal(sm.config(), CLUSTER_CONFIG_DEFAULTS)
  const data = new MetadataStateMachine({ kind: 'data', group: 1, groups: 3 })
  const r = data.apply({ type: 'SetConfig', key: 'replicationFactor', value: 2 }, 1)
  assert.is(!r.ok && r.error.name, 'WrongShard')
})

test.run()
