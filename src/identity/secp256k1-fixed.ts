/**
 * secp256k1 ECDSA verification against a known public key with fixed-base tables: the charger's
 * hot path (verify-voucher.ts). For a key Q (and the generator G) it precomputes, per 8-bit window
 * i, the affine points d·2^(8i)·Q for d = 1..128 (12-bit windows for G, shared by all keys); a
 * check then costs at most 33 + 22 mixed additions (signed digits), no doublings, and two
 * inversions, which a batch shares.
 *
 * `verifyRecoverable` answers exactly what ecrecover + compare would: R = u1·G + u2·Q must have
 * x = r (not r + n) and the y parity given by v. It is cross-checked against @noble/curves in the
 * tests. Variable time: it only ever handles public data.
 */
const P = 0xfffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2fn
const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n

// V8's BigInt remainder beats folding the high half by 2^256 ≡ 0x1000003D1 (measured).
const red = (x: bigint) => x % P
const mul = (a: bigint, b: bigint) => red(a * b)
const add = (a: bigint, b: bigint) => {
  const s = a + b
  return s >= P ? s - P : s
}
const sub = (a: bigint, b: bigint) => {
  const d = a - b
  return d < 0n ? d + P : d
}

/** Modular inverse by the extended Euclidean algorithm (a ≠ 0 mod m). */
export function invertMod(a: bigint, m: bigint): bigint {
  let [r0, r1, s0, s1] = [m, ((a % m) + m) % m, 0n, 1n]
  while (r1 !== 0n) {
    const q = r0 / r1
    ;[r0, r1] = [r1, r0 - q * r1]
    ;[s0, s1] = [s1, s0 - q * s1]
  }
  return ((s0 % m) + m) % m
}

/** A Jacobian point (X/Z², Y/Z³); Z = 0 is infinity. */
type Jacobian = { x: bigint; y: bigint; z: bigint }

function double(p: Jacobian): Jacobian {
  if (p.z === 0n || p.y === 0n) return { x: 0n, y: 1n, z: 0n }
  // dbl-2009-l (a = 0)
  const a = mul(p.x, p.x)
  const b = mul(p.y, p.y)
  const c = mul(b, b)
  const xb = add(p.x, b)
  const half = sub(sub(mul(xb, xb), a), c)
  const d = add(half, half)
  const e = add(add(a, a), a)
  const f = mul(e, e)
  const x3 = sub(f, add(d, d))
  const c8 = add(add(add(c, c), add(c, c)), add(add(c, c), add(c, c)))
  return { x: x3, y: sub(mul(e, sub(d, x3)), c8), z: mul(add(p.y, p.y), p.z) }
}

/** acc + (x2, y2) with the second point affine (madd-2007-bl, a = 0). */
function addAffine(acc: Jacobian, x2: bigint, y2: bigint): Jacobian {
  if (acc.z === 0n) return { x: x2, y: y2, z: 1n }
  const z1z1 = mul(acc.z, acc.z)
  const u2 = mul(x2, z1z1)
  const s2 = mul(mul(y2, acc.z), z1z1)
  const h = sub(u2, acc.x)
  const rr = sub(s2, acc.y)
  if (h === 0n) return rr === 0n ? double(acc) : { x: 0n, y: 1n, z: 0n }
  const hh = mul(h, h)
  const i = add(add(hh, hh), add(hh, hh))
  const j = mul(h, i)
  const r2 = add(rr, rr)
  const v = mul(acc.x, i)
  const x3 = sub(sub(mul(r2, r2), j), add(v, v))
  const y1j = mul(acc.y, j)
  const y3 = sub(mul(r2, sub(v, x3)), add(y1j, y1j))
  const zh = add(acc.z, h)
  const z3 = sub(sub(mul(zh, zh), z1z1), hh)
  return { x: x3, y: y3, z: z3 }
}

/** Affine coordinates of many Jacobian points with one inversion (Montgomery's trick). */
function toAffineAll(points: Jacobian[]): { x: bigint; y: bigint }[] {
  const prefix: bigint[] = []
  let running = 1n
  for (const p of points) {
    prefix.push(running)
    running = mul(running, p.z)
  }
  let inv = invertMod(running, P)
  const out: { x: bigint; y: bigint }[] = new Array(points.length)
  for (let k = points.length - 1; k >= 0; k--) {
    const p = points[k] as Jacobian
    const zi = mul(inv, prefix[k] as bigint)
    inv = mul(inv, p.z)
    const zi2 = mul(zi, zi)
    out[k] = { x: mul(p.x, zi2), y: mul(p.y, mul(zi2, zi)) }
  }
  return out
}

/**
 * The window tables of one point for `bits`-bit windows: xs/ys[i·half + d − 1] = d·2^(bits·i)·point
 * (affine, d = 1..half, half = 2^(bits−1)).
 */
export type FixedTable = { readonly bits: number; readonly xs: bigint[]; readonly ys: bigint[] }

/** Builds the tables for an affine point: 8-bit windows take ~4,200 additions (a few ms). */
export function fixedTable(x: bigint, y: bigint, bits = 8): FixedTable {
  const half = 1 << (bits - 1)
  const windows = Math.ceil(256 / bits) + 1
  const xs: bigint[] = []
  const ys: bigint[] = []
  let base = { x, y }
  for (let w = 0; w < windows; w++) {
    const row: Jacobian[] = []
    let acc: Jacobian = { x: base.x, y: base.y, z: 1n }
    row.push(acc)
    for (let d = 2; d <= half; d++) {
      acc = addAffine(acc, base.x, base.y)
      row.push(acc)
    }
    // 2^bits·base = 2·(half·base): the next window's base.
    row.push(double(acc))
    const affine = toAffineAll(row)
    for (let d = 0; d < half; d++) {
      xs.push((affine[d] as { x: bigint }).x)
      ys.push((affine[d] as { y: bigint }).y)
    }
    base = affine[half] as { x: bigint; y: bigint }
  }
  return { bits, xs, ys }
}

function accumulate(acc: Jacobian, table: FixedTable, scalar: bigint): Jacobian {
  const { bits } = table
  const half = 1 << (bits - 1)
  const mask = BigInt((1 << bits) - 1)
  const shift = BigInt(bits)
  let k = scalar
  let out = acc
  for (let w = 0; k !== 0n; w++) {
    let d = Number(k & mask)
    k >>= shift
    if (d > half) {
      d -= 1 << bits
      k += 1n
    }
    if (d === 0) continue
    const at = w * half + Math.abs(d) - 1
    const y = table.ys[at] as bigint
    out = addAffine(out, table.xs[at] as bigint, d < 0 ? P - y : y)
  }
  return out
}

const GX = 0x79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798n
const GY = 0x483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8n
let generatorTable: FixedTable | undefined

/** G's tables use 12-bit windows (~45k points, built once on first use): 22 additions per u1·G. */
function generator(): FixedTable {
  generatorTable ??= fixedTable(GX, GY, 12)
  return generatorTable
}

/** One signature to check: the key's table, the digest as an integer, r, s and the recovery bit. */
export type RecoverableCheck = {
  readonly key: FixedTable
  readonly z: bigint
  readonly r: bigint
  readonly s: bigint
  readonly recovery: 0 | 1
}

/**
 * Whether each (r, s, recovery) over z is a signature by its key with R's y parity equal to
 * `recovery` — i.e. ecrecover returns that key. The caller checks 0 < r < n and 0 < s ≤ n/2.
 * A batch shares its two modular inversions (Montgomery's trick), which is most of the saving
 * when a charger checks vouchers from many sessions at once.
 */
export function verifyRecoverableBatch(checks: readonly RecoverableCheck[]): boolean[] {
  if (checks.length === 0) return []
  const G = generator()
  // s⁻¹ mod n for all at once.
  const prefix: bigint[] = []
  let running = 1n
  for (const c of checks) {
    prefix.push(running)
    running = (running * c.s) % N
  }
  let inv = invertMod(running, N)
  const w: bigint[] = new Array(checks.length)
  for (let k = checks.length - 1; k >= 0; k--) {
    const c = checks[k] as RecoverableCheck
    w[k] = (inv * (prefix[k] as bigint)) % N
    inv = (inv * c.s) % N
  }
  const points = checks.map((c, k) => {
    const wk = w[k] as bigint
    return accumulate(accumulate({ x: 0n, y: 1n, z: 0n }, G, ((c.z % N) * wk) % N), c.key, (c.r * wk) % N)
  })
  const ok = points.map((R, k) => R.z !== 0n && R.x === mul((checks[k] as RecoverableCheck).r, mul(R.z, R.z)))
  const live = points.filter((_, k) => ok[k])
  if (live.length === 0) return ok
  const affine = toAffineAll(live)
  let next = 0
  return ok.map((good, k) => {
    if (!good) return false
    const y = (affine[next++] as { y: bigint }).y
    return Number(y & 1n) === (checks[k] as RecoverableCheck).recovery
  })
}

/** `verifyRecoverableBatch` for one signature. */
export function verifyRecoverable(
  key: FixedTable,
  z: bigint,
  r: bigint,
  s: bigint,
  recovery: 0 | 1,
): boolean {
  return verifyRecoverableBatch([{ key, z, r, s, recovery }])[0] as boolean
}
