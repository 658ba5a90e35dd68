import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';

/** Content is generated in blocks of this size; block k depends only on (seed, k). */
export const BLOCK_BYTES = 64 * 1024;

/**
 * Fills `out` with block `index` of the file with `seed` (xorshift32, seeded per block) so
 * any byte range can be produced without generating what comes before it.
 */
function fillBlock(seed: number, index: number, out: Uint32Array): void {
  let x = (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(index + 1, 0xc2b2ae35)) >>> 0 || 1;
  for (let i = 0; i < out.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x >>> 0;
  }
}

/** Bytes `[start, end)` of the generated file, as a stream of at most 64 KiB chunks. */
export function generatedRange(seed: number, start: number, end: number): Readable {
  async function* blocks() {
    const words = new Uint32Array(BLOCK_BYTES / 4);
    const bytes = Buffer.from(words.buffer);
    for (let pos = start; pos < end; ) {
      const index = Math.floor(pos / BLOCK_BYTES);
      fillBlock(seed, index, words);
      const from = pos - index * BLOCK_BYTES;
      const to = Math.min(BLOCK_BYTES, end - index * BLOCK_BYTES);
      yield Buffer.from(bytes.subarray(from, to));
      pos += to - from;
    }
  }
  return Readable.from(blocks(), { objectMode: false });
}

/** The whole file in memory (tests with small sizes). */
export async function generatedBytes(seed: number, start: number, end: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of generatedRange(seed, start, end)) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

/** sha256 (hex) of the generated file of `sizeBytes`: what a download must hash to. */
export async function generatedSha256(seed: number, sizeBytes: number): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of generatedRange(seed, 0, sizeBytes)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
