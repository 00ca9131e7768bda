/**
 * A small mutation fuzzer: takes a valid message (JSON value, text or bytes) and changes it a
 * little — one to three edits — the way broken or hostile peers do: a field dropped or of the
 * wrong type, an edge-case number, a prototype key, a flipped hex digit, a cut or doubled chunk.
 * Starting from valid input reaches the deep checks that random input never gets past.
 */

export type Random = () => number

const pick = <T>(random: Random, items: readonly T[]): T => items[Math.floor(random() * items.length)]!

/** Values that have broken JSON handlers before. */
export const interestingValues: readonly unknown[] = [
  null,
  true,
  false,
  0,
  -1,
  1,
  0.5,
  -0,
  2 ** 31,
  2 ** 32,
  2 ** 53,
  2 ** 53 + 2,
  -(2 ** 63),
  1e308,
  Number.MAX_SAFE_INTEGER,
  '',
  ' ',
  '0',
  '-1',
  '1e3',
  '0x',
  '0x0',
  `0x${'0'.repeat(40)}`,
  `0x${'f'.repeat(64)}`,
  `0x${'00'.repeat(65)}`,
  `0x${'zz'.repeat(32)}`,
  'toString',
  'constructor',
  '__proto__',
  'hasOwnProperty',
  '\u0000',
  '\ud800',
  'é'.repeat(3),
  'a'.repeat(5000),
  [],
  [null],
  {},
  { __proto__: null },
  [[[[[[]]]]]],
]

const interestingKeys = ['__proto__', 'constructor', 'toString', '', 'type', 'extra', 'v', 'seq']

type Path = (string | number)[]

/** Every path to a node of `value` (the root is []). */
function paths(value: unknown, prefix: Path = [], out: Path[] = []): Path[] {
  out.push(prefix)
  if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) paths(item, [...prefix, i], out)
  } else if (value && typeof value === 'object')
    for (const key of Object.keys(value))
      paths((value as Record<string, unknown>)[key], [...prefix, key], out)
  return out
}

function getAt(value: unknown, path: Path): unknown {
  let node = value
  for (const step of path) node = (node as Record<string | number, unknown>)[step]
  return node
}

function setAt(root: unknown, path: Path, next: unknown): unknown {
  if (path.length === 0) return next
  const parent = getAt(root, path.slice(0, -1)) as Record<string | number, unknown>
  Object.defineProperty(parent, path[path.length - 1]!, {
    value: next,
    enumerable: true,
    writable: true,
    configurable: true,
  })
  return root
}

function tweakString(random: Random, text: string): string {
  if (text.length === 0) return pick(random, ['a', '0', '0x'])
  const i = Math.floor(random() * text.length)
  switch (Math.floor(random() * 6)) {
    case 0: // flip one hex digit (a signature, hash or address that is almost right)
      return `${text.slice(0, i)}${pick(random, [...'0123456789abcdefABCDEF'])}${text.slice(i + 1)}`
    case 1:
      return text.slice(0, i)
    case 2:
      return text + text.slice(i)
    case 3:
      return text.toUpperCase()
    case 4:
      return `${text.slice(0, i)}${String.fromCharCode(Math.floor(random() * 0x3000))}${text.slice(i)}`
    default:
      return ` ${text}`
  }
}

function tweakNumber(random: Random, value: number): unknown {
  return pick(random, [value + 1, value - 1, -value, value * 1000, value / 3, String(value), value + 2 ** 53])
}

/** One structural edit of a JSON value (a deep copy is edited). */
function mutateValue(random: Random, value: unknown): unknown {
  const root = structuredClone(value)
  const all = paths(root)
  const path = pick(random, all)
  const node = getAt(root, path)
  const choice = Math.floor(random() * 8)
  if (choice === 0 && path.length > 0) {
    const parent = getAt(root, path.slice(0, -1))
    const key = path[path.length - 1]!
    if (Array.isArray(parent)) parent.splice(key as number, 1)
    else delete (parent as Record<string, unknown>)[key as string]
    return root
  }
  if (choice === 1) return setAt(root, path, structuredClone(pick(random, interestingValues)))
  if (choice === 2 && node && typeof node === 'object' && !Array.isArray(node)) {
    ;(node as Record<string, unknown>)[pick(random, interestingKeys)] = structuredClone(
      pick(random, interestingValues),
    )
    return root
  }
  if (choice === 3 && Array.isArray(node) && node.length > 0) {
    const i = Math.floor(random() * node.length)
    node.splice(i, 0, structuredClone(node[Math.floor(random() * node.length)]))
    if (random() < 0.5) node.reverse()
    return root
  }
  if (typeof node === 'string') return setAt(root, path, tweakString(random, node))
  if (typeof node === 'number') return setAt(root, path, tweakNumber(random, node))
  if (typeof node === 'boolean') return setAt(root, path, !node)
  // Swap in another node of the same message (a hash where an address goes, and so on).
  return setAt(root, path, structuredClone(getAt(root, pick(random, all))))
}

/** One byte-level edit of a text. */
export function mutateText(random: Random, text: string): string {
  const i = Math.floor(random() * (text.length + 1))
  switch (Math.floor(random() * 6)) {
    case 0:
      return text.slice(0, i)
    case 1:
      return text.slice(0, i) + text.slice(i + 1 + Math.floor(random() * 8))
    case 2:
      return (
        text.slice(0, i) +
        pick(random, ['{', '}', '[', ']', '"', ',', ':', '\\', '\n', '0', 'e']) +
        text.slice(i)
      )
    case 3:
      return text.slice(0, i) + text.slice(Math.max(0, i - 16), i) + text.slice(i)
    case 4:
      return text.slice(0, i) + String.fromCharCode(Math.floor(random() * 256)) + text.slice(i + 1)
    default:
      return `${text.slice(0, i)}${text.slice(i).replace(/[0-9a-f]/, (d) => ((Number.parseInt(d, 16) + 1) % 16).toString(16))}`
  }
}

/**
 * A mutant of `valid` as JSON text: mostly structural edits (they reach the semantic checks),
 * sometimes a byte-level edit of the text (the parser and framing).
 */
export function mutateJson(random: Random, valid: unknown): string {
  let value = valid
  const edits = 1 + Math.floor(random() * 3)
  for (let i = 0; i < edits; i++) value = mutateValue(random, value)
  let text = JSON.stringify(value) ?? 'null'
  if (random() < 0.2) text = mutateText(random, text)
  return text
}

/** One to four byte-level edits of binary input (DER). */
export function mutateBytes(random: Random, valid: Uint8Array): Uint8Array {
  let bytes = Uint8Array.from(valid)
  const edits = 1 + Math.floor(random() * 4)
  for (let e = 0; e < edits; e++) {
    const i = Math.floor(random() * Math.max(1, bytes.length))
    switch (Math.floor(random() * 7)) {
      case 0:
        bytes[i] = (bytes[i] ?? 0) ^ (1 << Math.floor(random() * 8))
        break
      case 1:
        bytes[i] = pick(random, [0x00, 0x7f, 0x80, 0x81, 0x82, 0x84, 0xff, 0x30, 0x02, 0x06, 0xa0, 0xa3])
        break
      case 2:
        bytes = bytes.slice(0, i)
        break
      case 3: {
        const grown = new Uint8Array(bytes.length + 1)
        grown.set(bytes.subarray(0, i))
        grown[i] = Math.floor(random() * 256)
        grown.set(bytes.subarray(i), i + 1)
        bytes = grown
        break
      }
      case 4: {
        const chunk = bytes.slice(i, i + 1 + Math.floor(random() * 32))
        const grown = new Uint8Array(bytes.length + chunk.length)
        grown.set(bytes.subarray(0, i))
        grown.set(chunk, i)
        grown.set(bytes.subarray(i), i + chunk.length)
        bytes = grown
        break
      }
      case 5:
        // A length byte after a tag: the classic DER trap.
        if (i + 1 < bytes.length)
          bytes[i + 1] = pick(random, [0x00, 0x01, 0x7f, 0x80, 0x81, 0x83, 0x84, 0x89])
        break
      default:
        bytes = Uint8Array.from([
          ...bytes.subarray(0, i),
          ...bytes.subarray(i + 1 + Math.floor(random() * 4)),
        ])
    }
  }
  return bytes
}
