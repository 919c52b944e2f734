import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { multiaddr } from '@multiformats/multiaddr'
import { addressKey, KNOWN_CLUSTERS_MAX, loadKnownClusters, saveKnownClusters, type KnownCluster } from '../../src/client/known-clusters.js'

const test = suite('client/known clusters file')

async function withDir (fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'dfs-known-'))
  try { await fn(dir) } finally { await rm(dir, { recursive: true, force: true }) }
}

const entry = (i: number): KnownCluster => ({ peerId: `peer${i}`, clusterId: `c${i}`, pin: 'p'.repeat(22), seenAt: new Date(1_700_000_000_000 + i).toISOString() })

test('an address is remembered without its /p2p part', () => {
  assert.is(addressKey(multiaddr('/ip4/127.0.0.1/tcp/7400/p2p/12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp')), '/ip4/127.0.0.1/tcp/7400')
  assert.is(addressKey(multiaddr('/ip4/127.0.0.1/tcp/7400')), '/ip4/127.0.0.1/tcp/7400')
})

test('saved 0600 in a 0700 dir, read back; a missing file is empty; the newest entries are kept', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'conf', 'known_clusters.json')
    assert.is((await loadKnownClusters(path)).size, 0)
    const entries = new Map<string, KnownCluster>()
    for (let i = 0; i < KNOWN_CLUSTERS_MAX + 5; i++) entries.set(`/ip4/127.0.0.1/tcp/${i}`, entry(i))
    await saveKnownClusters(path, entries)
    assert.is((await stat(path)).mode & 0o777, 0o600)
    assert.is((await stat(join(dir, 'conf'))).mode & 0o777, 0o700)
    const back = await loadKnownClusters(path)
    assert.is(back.size, KNOWN_CLUSTERS_MAX)
    assert.equal(back.get(`/ip4/127.0.0.1/tcp/${KNOWN_CLUSTERS_MAX + 4}`), entry(KNOWN_CLUSTERS_MAX + 4))
    assert.is(back.get('/ip4/127.0.0.1/tcp/0'), undefined, 'the oldest is forgotten')
  })
})

test('a corrupt file is a ConfigError naming it, never silently forgotten', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'known_clusters.json')
    for (const text of ['{', '[]', '{"version":2,"clusters":{}}', '{"version":1,"clusters":{"a":{"peerId":1}}}']) {
      await writeFile(path, text)
      try {
        await loadKnownClusters(path)
        assert.unreachable('expected ConfigError')
      } catch (err: any) {
        assert.is(err.name, 'ConfigError')
        assert.ok(err.message.includes(path))
      }
    }
  })
})

test.run()
