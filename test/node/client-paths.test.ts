import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { clientName, clientPath, escapeForTerminal, normalizePath, PATH_LENGTH_MAX, PATH_SEGMENT_LENGTH_MAX } from '@dfs/api'
import { fsMethods } from '../../src/node/handlers/fs.js'
import type { FileService } from '../../src/node/files.js'
import type { RpcMethod } from '../../src/net/rpc/types.js'

/** Names and paths a client sends: NFC, limits in UTF-8 bytes, no control or bidi characters; and their display. */
const test = suite('node/client-paths')

const refusal = (f: () => unknown): string => {
  try {
    f()
    return 'accepted'
  } catch (err) {
    return (err as Error).name
  }
}

test('a path is normalized to NFC: the decomposed and the composed spelling name one file', () => {
  const decomposed = '/caf\u0065\u0301/r\u0065\u0301sum\u0065\u0301.txt'
  const composed = '/caf\u00e9/r\u00e9sum\u00e9.txt'
  assert.is.not(decomposed, composed)
  assert.is(clientPath(decomposed), composed)
  assert.is(clientPath(composed), composed)
  // what normalizePath (the state machine's, unchanged) would make of the accepted path is the same
  assert.is(normalizePath(clientPath(decomposed)), composed)
  assert.is(clientPath('a//'.replace('//', '/')), '/a')
})

test('segment and path limits are UTF-8 bytes, not characters', () => {
  const euro = '\u20ac' // 3 bytes in UTF-8
  const fits = euro.repeat(85) // 255 bytes
  assert.is(clientPath(`/${fits}`), `/${fits}`)
  assert.is(refusal(() => clientPath(`/${fits}a`)), 'InvalidArgument', '256 bytes in 86 characters')
  // normalizePath counts characters: 86 characters pass there, which is why clients go through clientPath
  assert.is(normalizePath(`/${fits}a`), `/${fits}a`)
  const segment = 'x'.repeat(PATH_SEGMENT_LENGTH_MAX)
  const deep = Array.from({ length: 16 }, () => segment).join('/') // 16*255 + 15 = 4095 bytes, + leading / = 4096
  assert.is(clientPath(`/${deep}`).length, PATH_LENGTH_MAX)
  assert.is(refusal(() => clientPath(`/${deep}/`.replace(/\/$/, '/y'))), 'InvalidArgument')
  const wide = Array.from({ length: 16 }, () => euro.repeat(84)).join('/') // 16*252 + 15 + 1 bytes = 4048
  assert.ok(clientPath(`/${wide}`))
  assert.is(refusal(() => clientPath(`/${wide}/${euro.repeat(20)}`)), 'InvalidArgument', 'over 4096 bytes though under 4096 characters')
  assert.is(refusal(() => clientPath('/' + 'a'.repeat(5 * PATH_LENGTH_MAX))), 'InvalidArgument')
})

test('control (C0, DEL, C1) and bidi formatting characters are refused; other Unicode is fine', () => {
  const bad = ['\u0000', '\u0001', '\n', '\r', '\t', '\u001b', '\u007f', '\u0080', '\u009b', '\u009f',
    '\u202a', '\u202b', '\u202c', '\u202d', '\u202e', '\u2066', '\u2067', '\u2068', '\u2069', '\u200e', '\u200f', '\u061c']
  for (const c of bad) {
    const code = c.codePointAt(0)?.toString(16)
    assert.is(refusal(() => clientPath(`/docs/a${c}b.txt`)), 'InvalidArgument', `U+${code} in a path`)
    assert.is(refusal(() => clientName(`n${c}`, 'name', { bytesMax: 64 })), 'InvalidArgument', `U+${code} in a name`)
  }
  assert.is(refusal(() => clientPath('/a\ud800b')), 'InvalidArgument', 'a lone surrogate')
  for (const ok of ['/日本語/ファイル', '/emoji/🙂.png', '/ar/ملف', '/he/קובץ', '/spaces in names/ok']) assert.is(clientPath(ok), ok)
  try {
    clientPath('/invoice\u202egnp.exe')
    assert.unreachable()
  } catch (err: any) {
    assert.is(err.name, 'InvalidArgument')
    assert.is(err.details.codePoint, 'U+202E')
  }
  assert.is(refusal(() => clientPath(5)), 'InvalidArgument')
  assert.is(refusal(() => clientPath('')), 'InvalidArgument')
  assert.is(refusal(() => clientPath('/a/../b')), 'InvalidArgument')
  assert.is(clientName('', 'region', { bytesMax: 8, allowEmpty: true }), '')
  assert.is(refusal(() => clientName('', 'region', { bytesMax: 8 })), 'InvalidArgument')
  assert.is(refusal(() => clientName('\u00e9'.repeat(5), 'region', { bytesMax: 8 })), 'InvalidArgument', '10 bytes')
})

test('every fs RPC checks its path with clientPath before a handler runs', () => {
  const methods = new Map<string, RpcMethod>(fsMethods({} as unknown as FileService).map((m) => [m.name, m]))
  assert.ok(methods.size >= 5)
  for (const [method, m] of methods) {
    if (!method.startsWith('fs.')) continue
    if (method === 'fs.compose') continue // below: its paths are a target and a list of parts
    // fs.mv and fs.cp name two paths, `from` and `to`: each is checked
    const keys = method === 'fs.mv' || method === 'fs.cp' ? ['from', 'to'] : ['path']
    for (const key of keys) {
      // and the method's other required params
      const other = { ...Object.fromEntries(keys.filter((k) => k !== key).map((k) => [k, '/ok'])), ...(method === 'fs.utime' ? { mtimeMs: 1 } : {}) }
      assert.is(refusal(() => m.params({ ...other, [key]: '/a\u202eb' })), 'InvalidArgument', method)
      assert.is(refusal(() => m.params({ ...other, [key]: '/a\u0007' })), 'InvalidArgument', method)
      assert.is(refusal(() => m.params({ ...other, [key]: `/${'\u20ac'.repeat(86)}` })), 'InvalidArgument', method)
      assert.is(m.params({ ...other, [key]: 'caf\u0065\u0301' })[key], '/caf\u00e9', method)
    }
  }
  // fs.compose: the target (validated as `path`) and every part
  const compose = methods.get('fs.compose') as RpcMethod
  for (const bad of ['/a\u202eb', '/a\u0007', `/${'\u20ac'.repeat(86)}`]) {
    assert.is(refusal(() => compose.params({ to: bad, parts: ['/ok'] })), 'InvalidArgument')
    assert.is(refusal(() => compose.params({ to: '/ok', parts: ['/ok2', bad] })), 'InvalidArgument')
  }
  assert.equal(compose.params({ to: 'caf\u0065\u0301', parts: ['x\u0065\u0301'] }).path, '/caf\u00e9')
  assert.equal(compose.params({ to: '/t', parts: ['x\u0065\u0301'] }).parts, ['/x\u00e9'])
})

test('escapeForTerminal shows control and bidi characters as \\u{…} and leaves the rest', () => {
  assert.is(escapeForTerminal('a\u001b[2Jb'), 'a\\u{1b}[2Jb')
  assert.is(escapeForTerminal('x\u202ey\u2066z\u0085'), 'x\\u{202e}y\\u{2066}z\\u{85}')
  assert.is(escapeForTerminal('l1\nl2'), 'l1\\u{a}l2')
  assert.is(escapeForTerminal('l1\nl2\r', { keepNewlines: true }), 'l1\nl2\\u{d}')
  assert.is(escapeForTerminal('日本 🙂 café'), '日本 🙂 café')
})

test.run()
