import { s3Error } from './errors.js'

/**
 * The XML of the S3 API: a writer for responses and a small strict reader for the two request bodies
 * that carry XML (CompleteMultipartUpload and DeleteObjects, and CreateBucket's optional
 * configuration). The reader knows elements, text, character and entity references, comments and the
 * XML declaration; attributes are read and ignored (xmlns). Anything else — a DTD, CDATA, mismatched
 * tags — is MalformedXML, as is a document past its size limit or nesting depth.
 */

export const S3_XMLNS = 'http://s3.amazonaws.com/doc/2006-03-01/'

/** Escapes text for element content or attribute values. Refuses characters XML 1.0 cannot carry. */
export function escapeXml (text: string): string {
  let out = ''
  for (const ch of text) {
    const c = ch.codePointAt(0) as number
    if (ch === '&') out += '&amp;'
    else if (ch === '<') out += '&lt;'
    else if (ch === '>') out += '&gt;'
    else if (ch === '"') out += '&quot;'
    else if (ch === "'") out += '&apos;'
    // XML 1.0 has no way to carry most control characters: S3 itself answers them as references,
    // which strict parsers refuse; keys here never hold them (client paths refuse control characters)
    else if (c < 0x20 && c !== 0x9 && c !== 0xa && c !== 0xd) out += `&#x${c.toString(16)};`
    else out += ch
  }
  return out
}

/** A value of an element: text, a nested element list, or absent (skipped). */
export type XmlValue = string | number | boolean | XmlNode[] | undefined | null
/** One element: [name, value]. */
export type XmlNode = [string, XmlValue]

function render (nodes: XmlNode[]): string {
  let out = ''
  for (const [name, value] of nodes) {
    if (value === undefined || value === null) continue
    const inner = Array.isArray(value) ? render(value) : escapeXml(String(value))
    out += `<${name}>${inner}</${name}>`
  }
  return out
}

/** A whole response document: `<?xml …?><Root xmlns="…">…</Root>`. */
export function xmlDocument (root: string, children: XmlNode[], options: { xmlns?: boolean } = {}): string {
  const ns = options.xmlns === false ? '' : ` xmlns="${S3_XMLNS}"`
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${root}${ns}>${render(children)}</${root}>`
}

/** A parsed element. */
export interface XmlElement {
  name: string
  children: XmlElement[]
  /** The element's own text (concatenated, entities resolved). */
  text: string
}

const XML_DEPTH_MAX = 16
const XML_ELEMENTS_MAX = 100_000

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" }

function decodeText (raw: string): string {
  if (/&(?!(#x[0-9a-fA-F]{1,6}|#[0-9]{1,7}|[a-z]{2,4});)/.test(raw)) throw s3Error('MalformedXML', 'a bare & in text')
  return raw.replace(/&(#x[0-9a-fA-F]{1,6}|#[0-9]{1,7}|[a-z]{2,4});/g, (whole, ref: string) => {
    if (ref.startsWith('#')) {
      const code = ref[1] === 'x' ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10)
      // NUL, surrogates (no string can hold one alone) and U+FFFE/U+FFFF are never characters; the
      // other C0 controls are accepted as references (as XML 1.1 does), so escapeXml's output reads back
      if (!(code >= 1 && code <= 0x10ffff) || (code >= 0xd800 && code <= 0xdfff) || code === 0xfffe || code === 0xffff) {
        throw s3Error('MalformedXML', `bad character reference ${whole}`)
      }
      return String.fromCodePoint(code)
    }
    const e = ENTITIES[ref]
    if (e === undefined) throw s3Error('MalformedXML', `unknown entity ${whole}`)
    return e
  })
}

/** Parses a small XML document into its root element (MalformedXML on anything it does not accept). */
export function parseXml (doc: string): XmlElement {
  let i = 0
  const n = doc.length
  let elements = 0
  // XML's white space only (not JavaScript's \s, which also matches NBSP, U+2028 …)
  const isSpace = (c: string | undefined): boolean => c === ' ' || c === '\t' || c === '\n' || c === '\r'
  const skipSpace = (): void => { while (i < n && isSpace(doc[i])) i++ }
  const fail = (what: string): never => { throw s3Error('MalformedXML', `the XML is not well-formed: ${what} at offset ${i}`) }
  const skipMisc = (): void => {
    while (true) {
      skipSpace()
      if (doc.startsWith('<?', i)) {
        const end = doc.indexOf('?>', i + 2)
        if (end < 0) fail('an unterminated declaration')
        i = end + 2
      } else if (doc.startsWith('<!--', i)) {
        const end = doc.indexOf('-->', i + 4)
        if (end < 0) fail('an unterminated comment')
        i = end + 3
      } else {
        return
      }
    }
  }
  const name = (): string => {
    const m = /^[A-Za-z_][A-Za-z0-9_.:-]{0,127}/.exec(doc.slice(i, i + 128))
    if (m === null) return fail('a missing name')
    i += m[0].length
    return m[0]
  }
  const element = (depth: number): XmlElement => {
    if (depth > XML_DEPTH_MAX) fail('nesting too deep')
    if (++elements > XML_ELEMENTS_MAX) fail('too many elements')
    if (doc[i] !== '<') fail("a missing '<'")
    i++
    const tag = name()
    // attributes: read and ignored; each follows white space
    while (true) {
      const spaced = isSpace(doc[i])
      skipSpace()
      if (doc.startsWith('/>', i)) {
        i += 2
        return { name: tag, children: [], text: '' }
      }
      if (doc[i] === '>') {
        i++
        break
      }
      if (!spaced) fail('an attribute without white space before it')
      name()
      skipSpace()
      if (doc[i] !== '=') fail("a missing '=' in an attribute")
      i++
      skipSpace()
      const q = doc[i]
      if (q !== '"' && q !== "'") fail('an unquoted attribute')
      const end = doc.indexOf(q, i + 1)
      if (end < 0) fail('an unterminated attribute')
      decodeText(doc.slice(i + 1, end))
      i = end + 1
    }
    const children: XmlElement[] = []
    let text = ''
    while (true) {
      if (i >= n) fail(`an unclosed <${tag}>`)
      if (doc.startsWith('</', i)) {
        i += 2
        const closing = name()
        if (closing !== tag) fail(`</${closing}> closing <${tag}>`)
        skipSpace()
        if (doc[i] !== '>') fail("a missing '>'")
        i++
        return { name: tag, children, text }
      }
      if (doc.startsWith('<!--', i)) {
        const end = doc.indexOf('-->', i + 4)
        if (end < 0) fail('an unterminated comment')
        i = end + 3
        continue
      }
      if (doc.startsWith('<!', i) || doc.startsWith('<?', i)) fail('a DTD, CDATA or processing instruction')
      if (doc[i] === '<') {
        children.push(element(depth + 1))
        continue
      }
      const end = doc.indexOf('<', i)
      const raw = doc.slice(i, end < 0 ? n : end)
      text += decodeText(raw)
      i += raw.length
    }
  }
  // a byte order mark, which a UTF-8 decoder leaves in the text
  if (doc.startsWith('\uFEFF')) i = 1
  skipMisc()
  const root = element(1)
  skipMisc()
  if (i !== n) fail('content after the root element')
  return root
}

/** The children of `el` named `name`. */
export function childrenNamed (el: XmlElement, name: string): XmlElement[] {
  return el.children.filter((c) => c.name === name)
}

/** The text of the one child named `name` (undefined when absent; MalformedXML when repeated). */
export function childText (el: XmlElement, name: string): string | undefined {
  const found = childrenNamed(el, name)
  if (found.length > 1) throw s3Error('MalformedXML', `<${name}> appears ${found.length} times in <${el.name}>`)
  return found[0]?.text
}
