import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { chmod, mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseAddress } from '../../src/net/address.js'
import { loadOrCreateKey, peerIdString, readKeyFile } from '../../src/net/keys.js'

const test = suite('net/address and keys')

test('addresses: host:port, bare ports, IPv6 and multiaddrs', () => {
  assert.is(parseAddress('127.0.0.1:7400').toString(), '/ip4/127.0.0.1/tcp/7400')
  assert.is(parseAddress('localhost:1').toString(), '/ip4/127.0.0.1/tcp/1')
  assert.is(parseAddress('7400').toString(), '/ip4/127.0.0.1/tcp/7400')
  assert.is(parseAddress('[::1]:9').toString(), '/ip6/::1/tcp/9')
  assert.is(parseAddress('node1.example:7400').toString(), '/dns/node1.example/tcp/7400')
  const ma = '/ip4/10.0.0.1/tcp/7400/p2p/12D3KooWRyh2zNmr7R2ixgMm9AXDBYUYPzfntKCELAq8HDtpAVMX'
  assert.is(parseAddress(ma).toString(), ma)
  for (const bad of ['', 'host', 'host:99999', 'host:x', '/ip4/1.2.3.4/udp/5', '/nonsense']) {
    assert.throws(() => parseAddress(bad), (e: any) => e.name === 'InvalidArgument', bad)
  }
})

test('keys: created once with mode 0600, the same PeerId after reload; readable-by-others and garbage refused', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dfs-keys-'))
  try {
    const path = join(dir, 'sub', 'id.key')
    const a = await loadOrCreateKey(path)
    assert.ok(a.created)
    assert.is((await stat(path)).mode & 0o777, 0o600)
    const b = await loadOrCreateKey(path)
    assert.not.ok(b.created)
    assert.is(peerIdString(b.key), peerIdString(a.key))
    const [c, d] = await Promise.all([loadOrCreateKey(join(dir, 'race.key')), loadOrCreateKey(join(dir, 'race.key'))])
    assert.is(peerIdString(c.key), peerIdString(d.key), 'concurrent creation settles on one key')
    await chmod(path, 0o644)
    try { await readKeyFile(path); assert.unreachable() } catch (e: any) { assert.is(e.name, 'ConfigError') }
    await writeFile(join(dir, 'junk.key'), 'not a key', { mode: 0o600 })
    try { await readKeyFile(join(dir, 'junk.key')); assert.unreachable() } catch (e: any) { assert.is(e.name, 'ConfigError') }
    try { await readKeyFile(join(dir, 'missing.key')); assert.unreachable() } catch (e: any) { assert.is(e.name, 'NotFound') }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test.run()
