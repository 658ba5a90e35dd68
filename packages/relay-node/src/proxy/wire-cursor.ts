import { RelayError } from '@relaymesh/shared';

/**
 * Byte cursors for the two data plane messages (docs/data-plane.md §2): big-endian
 * integers and length-prefixed UTF-8 strings (`str8`: 1-byte length, `str16`: 2-byte
 * length, both in bytes).
 */

/** ERR_PROXY_BAD_OPEN_HEADER: the one error of a malformed message. */
export function badHeader(message: string): RelayError {
  return new RelayError('ERR_PROXY_BAD_OPEN_HEADER', message);
}

/**
 * Writes a message into one buffer sized up front (see {@link WireWriter.bound}), so
 * nothing is copied: the caller gets a view of the bytes written.
 */
export class WireWriter {
  readonly #buf: Buffer;
  #pos: number;

  /** Room for `bytes` bytes after a 4-byte length prefix (filled by {@link finish}). */
  constructor(bytes: number) {
    this.#buf = Buffer.allocUnsafe(4 + bytes);
    this.#pos = 4;
  }

  /** Upper bound of a string's UTF-8 bytes: 3 per UTF-16 unit (4 per surrogate pair). */
  static bound(s: string): number {
    return 3 * s.length;
  }

  u8(v: number): void {
    this.#buf[this.#pos++] = v;
  }

  u16(v: number): void {
    this.#buf.writeUInt16BE(v, this.#pos);
    this.#pos += 2;
  }

  u32(v: number): void {
    this.#buf.writeUInt32BE(v, this.#pos);
    this.#pos += 4;
  }

  f64(v: number): void {
    this.#buf.writeDoubleBE(v, this.#pos);
    this.#pos += 8;
  }

  /** A string with a 1-byte length. Throws ERR_PROXY_BAD_OPEN_HEADER above 255 bytes. */
  str8(s: string, field: string): void {
    const n = this.#buf.write(s, this.#pos + 1, 'utf8');
    if (n > 0xff) throw badHeader(`${field} is longer than 255 bytes`);
    this.#buf[this.#pos] = n;
    this.#pos += 1 + n;
  }

  /** A string with a 2-byte length. Throws ERR_PROXY_BAD_OPEN_HEADER above 65535 bytes. */
  str16(s: string, field: string): void {
    const n = this.#buf.write(s, this.#pos + 2, 'utf8');
    if (n > 0xffff) throw badHeader(`${field} is longer than 65535 bytes`);
    this.#buf.writeUInt16BE(n, this.#pos);
    this.#pos += 2 + n;
  }

  /** The message with its 4-byte big-endian length prefix. */
  finish(): Buffer {
    this.#buf.writeUInt32BE(this.#pos - 4, 0);
    return this.#buf.subarray(0, this.#pos);
  }
}

/** Reads a message; every read past the end throws ERR_PROXY_BAD_OPEN_HEADER naming the field. */
export class WireReader {
  readonly #buf: Buffer;
  #pos = 0;

  constructor(buf: Buffer) {
    this.#buf = buf;
  }

  #need(n: number, field: string): number {
    const at = this.#pos;
    if (at + n > this.#buf.length) throw badHeader(`message truncated in ${field}`);
    this.#pos = at + n;
    return at;
  }

  u8(field: string): number {
    return this.#buf[this.#need(1, field)]!;
  }

  u16(field: string): number {
    return this.#buf.readUInt16BE(this.#need(2, field));
  }

  u32(field: string): number {
    return this.#buf.readUInt32BE(this.#need(4, field));
  }

  f64(field: string): number {
    return this.#buf.readDoubleBE(this.#need(8, field));
  }

  str8(field: string): string {
    const n = this.u8(field);
    const at = this.#need(n, field);
    return this.#buf.toString('utf8', at, at + n);
  }

  str16(field: string): string {
    const n = this.u16(field);
    const at = this.#need(n, field);
    return this.#buf.toString('utf8', at, at + n);
  }

  /** Throws unless every byte was read (a longer message is malformed, not extensible). */
  end(what: string): void {
    if (this.#pos !== this.#buf.length) {
      throw badHeader(`${this.#buf.length - this.#pos} bytes after the ${what}`);
    }
  }
}
