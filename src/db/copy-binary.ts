/**
 * PostgreSQL's binary COPY format (the `COPY … FROM … (format binary)` input that
 * `Queryable.copyFrom` takes): a signature header, then per row a 16-bit field count and per field
 * a 32-bit length (-1 for NULL) and the value in the type's binary ("send") form, then -1.
 * Both engines take it, and loading rows this way skips SQL parameter serialization and parsing.
 */

const signature = [0x50, 0x47, 0x43, 0x4f, 0x50, 0x59, 0x0a, 0xff, 0x0d, 0x0a, 0x00] // PGCOPY\n\377\r\n\0
const TWO_32 = 2 ** 32

/** Writes rows in the binary COPY format into one growing buffer. */
export class CopyBinaryWriter {
  #buffer: Buffer
  #position: number

  constructor(capacity = 64 * 1024) {
    this.#buffer = Buffer.allocUnsafe(Math.max(capacity, 64))
    this.#buffer.set(signature, 0)
    this.#buffer.writeInt32BE(0, 11) // flags
    this.#buffer.writeInt32BE(0, 15) // header extension length
    this.#position = 19
  }

  #reserve(bytes: number): Buffer {
    if (this.#position + bytes > this.#buffer.length) {
      const grown = Buffer.allocUnsafe(Math.max(this.#buffer.length * 2, this.#position + bytes))
      this.#buffer.copy(grown, 0, 0, this.#position)
      this.#buffer = grown
    }
    return this.#buffer
  }

  /** Starts a row of `fields` values. */
  row(fields: number): this {
    this.#reserve(2).writeInt16BE(fields, this.#position)
    this.#position += 2
    return this
  }

  /** bigint (int8) from a safe integer. */
  int8(value: number): this {
    const buffer = this.#reserve(12)
    const p = this.#position
    buffer.writeInt32BE(8, p)
    buffer.writeInt32BE(Math.floor(value / TWO_32), p + 4)
    buffer.writeUInt32BE(value >>> 0, p + 8)
    this.#position = p + 12
    return this
  }

  /** smallint (int2). */
  int2(value: number): this {
    const buffer = this.#reserve(6)
    buffer.writeInt32BE(2, this.#position)
    buffer.writeInt16BE(value, this.#position + 4)
    this.#position += 6
    return this
  }

  /** double precision (float8). */
  float8(value: number): this {
    const buffer = this.#reserve(12)
    buffer.writeInt32BE(8, this.#position)
    buffer.writeDoubleBE(value, this.#position + 4)
    this.#position += 12
    return this
  }

  /** bytea. */
  bytes(value: Uint8Array): this {
    const buffer = this.#reserve(4 + value.length)
    buffer.writeInt32BE(value.length, this.#position)
    buffer.set(value, this.#position + 4)
    this.#position += 4 + value.length
    return this
  }

  /** bytea from hex digits (no `0x`), written straight into the buffer. */
  hexBytes(hex: string): this {
    const length = hex.length >>> 1
    const buffer = this.#reserve(4 + length)
    buffer.writeInt32BE(length, this.#position)
    buffer.write(hex, this.#position + 4, length, 'hex')
    this.#position += 4 + length
    return this
  }

  /** text, or bytea holding a string's UTF-8 bytes: the same bytes on the wire. */
  text(value: string): this {
    const buffer = this.#reserve(4 + value.length * 3)
    const written = buffer.write(value, this.#position + 4, 'utf8')
    buffer.writeInt32BE(written, this.#position)
    this.#position += 4 + written
    return this
  }

  /** jsonb from JSON text (binary jsonb is a version byte, 1, then the text). */
  jsonb(json: string): this {
    const buffer = this.#reserve(5 + json.length * 3)
    buffer[this.#position + 4] = 1
    const written = buffer.write(json, this.#position + 5, 'utf8')
    buffer.writeInt32BE(written + 1, this.#position)
    this.#position += 5 + written
    return this
  }

  /** NULL. */
  null(): this {
    this.#reserve(4).writeInt32BE(-1, this.#position)
    this.#position += 4
    return this
  }

  /** The finished COPY data (the writer is done with it). */
  end(): Uint8Array {
    this.#reserve(2).writeInt16BE(-1, this.#position)
    this.#position += 2
    return this.#buffer.subarray(0, this.#position)
  }
}
