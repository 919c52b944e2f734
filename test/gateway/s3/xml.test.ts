import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { S3_XMLNS, childText, childrenNamed, escapeXml, parseXml, xmlDocument, type XmlElement } from '../../../src/gateway/s3/xml.js'
import type { S3Error } from '../../../src/gateway/s3/errors.js'

const test = suite('gateway/s3/xml')

function malformed (doc: string): void {
  try {
    parseXml(doc)
  } catch (err) {
    assert.is((err as Error).name, 'S3Error', JSON.stringify(doc.slice(0, 80)))
    assert.is((err as S3Error).code, 'MalformedXML', JSON.stringify(doc.slice(0, 80)))
    assert.is((err as S3Error).status, 400)
    return
  }
  assert.unreachable(`accepted ${JSON.stringify(doc.slice(0, 80))}`)
}

/** An element as plain data, for assert.equal. */
function shape (el: XmlElement): unknown {
  return el.children.length === 0 ? [el.name, el.text] : [el.name, el.children.map(shape)]
}

test('escapeXml escapes the five specials and passes everything else', () => {
  assert.is(escapeXml(`a&b<c>d"e'f`), 'a&amp;b&lt;c&gt;d&quot;e&apos;f')
  assert.is(escapeXml('plain é \u{1F600} \t\n'), 'plain é \u{1F600} \t\n')
  assert.is(escapeXml(''), '')
  assert.is(escapeXml('&amp;'), '&amp;amp;')
  // C0 controls XML 1.0 cannot carry become references, which parseXml reads back (NUL aside)
  assert.is(escapeXml('a\u0001b\u001f'), 'a&#x1;b&#x1f;')
  assert.is(childText(parseXml(xmlDocument('A', [['K', 'a\u0001b\u001f']])), 'K'), 'a\u0001b\u001f')
})

test('xmlDocument writes the declaration, the namespace, nested elements, and skips absent values', () => {
  const doc = xmlDocument('ListAllMyBucketsResult', [
    ['Owner', [['ID', 'me']]],
    ['Buckets', [['Bucket', [['Name', 'a&b'], ['CreationDate', undefined]]], ['Bucket', [['Name', 'c']]]]],
    ['Count', 2],
    ['IsTruncated', false],
    ['Absent', null]
  ])
  assert.is(doc, `<?xml version="1.0" encoding="UTF-8"?>\n<ListAllMyBucketsResult xmlns="${S3_XMLNS}"><Owner><ID>me</ID></Owner>` +
    '<Buckets><Bucket><Name>a&amp;b</Name></Bucket><Bucket><Name>c</Name></Bucket></Buckets><Count>2</Count><IsTruncated>false</IsTruncated>' +
    '</ListAllMyBucketsResult>')
  assert.is(xmlDocument('Error', [['Code', 'X']], { xmlns: false }), '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>X</Code></Error>')
})

test('parseXml reads back what xmlDocument writes (round trips of awkward text)', () => {
  const texts = ['', ' ', 'a&b<c>d"e\'f', 'é\u{1F600}\uFF61', '  leading and trailing  ', 'line\nbreak\ttab', ']]>', '&amp;', '<!-- not a comment -->']
  for (const text of texts) {
    const root = parseXml(xmlDocument('Root', [['Key', text], ['Nested', [['Inner', text]]]]))
    assert.is(root.name, 'Root')
    assert.is(childText(root, 'Key') ?? '', text, JSON.stringify(text))
    assert.is(childText(childrenNamed(root, 'Nested')[0], 'Inner') ?? '', text, JSON.stringify(text))
  }
})

test('parseXml: entities, character references, comments, declaration, attributes ignored, self-closing', () => {
  const root = parseXml('<?xml version="1.0" encoding="UTF-8"?>\n<!-- a comment -->\n<A x="1" y=\'&amp;2\'>' +
    '<B>&lt;&gt;&amp;&quot;&apos;&#65;&#x42;&#x1F600;</B><!-- inside --><C/><D z="q" /></A>\n<!-- after -->\n')
  assert.equal(shape(root), ['A', [['B', '<>&"\'AB\u{1F600}'], ['C', ''], ['D', '']]])
  // whitespace between elements is the parent's text; an element's text is kept exactly
  const spaced = parseXml('<A>\n  <B> x </B>\n</A >')
  assert.is(childText(spaced, 'B'), ' x ')
  assert.is(spaced.text, '\n  \n')
  // a byte order mark before the declaration
  assert.is(parseXml('\uFEFF<?xml version="1.0"?><A/>').name, 'A')
})

test('parseXml refuses malformed documents with MalformedXML', () => {
  const docs = [
    '', '   ', 'text', '<A>', '<A', '<A><B></A></B>', '<A></B>', '<A>a & b</A>', '<A>&unknown;</A>', '<A>&AMP;</A>', '<A>&#;</A>',
    '<A>&#x110000;</A>', '<A>&#0;</A>', '<A>&#xD800;</A>', '<A>&#99999999;</A>',
    '<!DOCTYPE A [<!ENTITY x "y">]><A>&x;</A>', '<A><![CDATA[x]]></A>', '<A><!DOCTYPE B></A>', '<A/>trailing', '<A/><B/>',
    '<A></A>garbage', '<A x=1/>', '<A x="1/>', '<A x/>', '<A><?pi x?></A>', '<A><!-- unterminated </A>', '<!-- x',
    '<?xml version="1.0"', '<A>&amp</A>', '<1A/>', '< A/>', '<A x="a & b"/>', '<A x="1"y="2"/>', '<A\u00a0x="1"/>'
  ]
  for (const doc of docs) malformed(doc)
})

test('parseXml: nesting deeper than 16 is MalformedXML; 16 is fine', () => {
  const nest = (depth: number): string => '<E>'.repeat(depth) + 'x' + '</E>'.repeat(depth)
  let el = parseXml(nest(16))
  for (let i = 1; i < 16; i++) el = el.children[0]
  assert.is(el.text, 'x')
  malformed(nest(17))
  malformed(nest(10_000))
})

test('childText refuses a repeated element', () => {
  const root = parseXml('<A><K>1</K><K>2</K></A>')
  assert.equal(childrenNamed(root, 'K').map((k) => k.text), ['1', '2'])
  assert.is(childText(root, 'Missing'), undefined)
  try {
    childText(root, 'K')
    assert.unreachable('a repeated element')
  } catch (err) {
    assert.is((err as S3Error).code, 'MalformedXML')
  }
})

test('the CompleteMultipartUpload body an SDK sends (xmlns, quoted ETags)', () => {
  const body = `<?xml version="1.0" encoding="UTF-8"?>
<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Part><ETag>&quot;0cc175b9c0f1b6a831c399e269772661&quot;</ETag><PartNumber>1</PartNumber></Part>
  <Part>
    <ETag>"92eb5ffee6ae2fec3ad71c777531578f"</ETag>
    <ChecksumCRC32>AAAAAA==</ChecksumCRC32>
    <PartNumber>2</PartNumber>
  </Part>
</CompleteMultipartUpload>`
  const root = parseXml(body)
  assert.is(root.name, 'CompleteMultipartUpload')
  const parts = childrenNamed(root, 'Part').map((p) => ({ etag: childText(p, 'ETag'), n: childText(p, 'PartNumber') }))
  assert.equal(parts, [
    { etag: '"0cc175b9c0f1b6a831c399e269772661"', n: '1' },
    { etag: '"92eb5ffee6ae2fec3ad71c777531578f"', n: '2' }
  ])
})

test('the Delete body an SDK sends (Quiet, keys with entities)', () => {
  const body = '<?xml version="1.0" encoding="UTF-8"?><Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' +
    '<Object><Key>a&amp;b.txt</Key></Object><Object><Key>dir/é &lt;1&gt;</Key><VersionId>null</VersionId></Object><Quiet>true</Quiet></Delete>'
  const root = parseXml(body)
  assert.is(root.name, 'Delete')
  assert.is(childText(root, 'Quiet'), 'true')
  assert.equal(childrenNamed(root, 'Object').map((o) => childText(o, 'Key')), ['a&b.txt', 'dir/é <1>'])
})

test.run()
