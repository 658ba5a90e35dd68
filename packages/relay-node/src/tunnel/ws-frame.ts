import { randomFillSync } from 'node:crypto';
import { createRequire } from 'node:module';

/**
 * WebSocket framing of one relaymux frame in place (RFC 6455 section 5.2), so that the
 * frame leaves as one buffer that we own: no header allocation, and no masked copy.
 *
 * `ws` copies every Buffer a client sends (it cannot know the caller will not reuse it,
 * so it masks into a new buffer), which at 1-1.5 GB/s is a second external allocation of
 * every byte and drives V8 into ~20 full collections a second. The scheduler already
 * copies each payload into a frame slab we own, with room in front (`headroom`), so the
 * header goes there and the payload is masked where it lies.
 *
 *    slab:  [ unused | WS header (2-14 B) | relaymux header (12 B) | payload ]
 *                    ^ returned view starts here
 *
 * The peer's side is unchanged: `ws`'s own Receiver parses these frames.
 */

/** How this end masks what it sends: clients mask (random key), servers do not. */
export type WsMasking = 'random' | 'zero' | 'none';

/** Largest WebSocket header: 2 bytes, 8 of extended length, 4 of mask key. */
export function wsHeadroom(masking: WsMasking): number {
  return masking === 'none' ? 10 : 14;
}

interface MaskImpl {
  unmask(buffer: Buffer, mask: Buffer): void;
}

/** XOR with the key in place: bufferutil's native loop when it loads (ws uses it too). */
const xorInPlace: MaskImpl['unmask'] = (() => {
  const jsLoop = (b: Buffer, mask: Buffer) => {
    for (let i = 0; i < b.length; i++) b[i]! ^= mask[i & 3]!;
  };
  try {
    const native = (createRequire(import.meta.url)('bufferutil') as MaskImpl).unmask;
    // Like ws: a JS loop is faster than crossing into native code for a few bytes.
    return (b: Buffer, mask: Buffer) => (b.length < 32 ? jsLoop(b, mask) : native(b, mask));
  } catch {
    return jsLoop;
  }
})();

/** Mask keys come from a pool filled by the CSPRNG 2,048 keys at a time (as ws does). */
const KEY_POOL_SIZE = 8 * 1024;
const keyPool = Buffer.alloc(KEY_POOL_SIZE);
let keyAt = KEY_POOL_SIZE;
const key = Buffer.alloc(4);

function nextKey(): Buffer {
  if (keyAt === KEY_POOL_SIZE) {
    randomFillSync(keyPool);
    keyAt = 0;
  }
  keyPool.copy(key, 0, keyAt, keyAt + 4);
  keyAt += 4;
  return key;
}

/**
 * Writes the header of one final binary WebSocket message in front of `buf[headroom..]`
 * and masks the payload in place (unless `masking` is 'none', or 'zero': an all-zero key
 * leaves the payload as it is). Returns the view to write: header + payload.
 * `headroom` must be at least {@link wsHeadroom}(masking).
 */
export function frameInPlace(buf: Buffer, headroom: number, masking: WsMasking): Buffer {
  const n = buf.length - headroom;
  const maskLen = masking === 'none' ? 0 : 4;
  const extLen = n < 126 ? 0 : n < 65536 ? 2 : 8;
  const start = headroom - 2 - extLen - maskLen;
  buf[start] = 0x82; // FIN, opcode 2 (binary)
  const maskBit = maskLen === 0 ? 0 : 0x80;
  let p = start + 2;
  if (extLen === 0) {
    buf[start + 1] = maskBit | n;
  } else if (extLen === 2) {
    buf[start + 1] = maskBit | 126;
    buf.writeUInt16BE(n, p);
    p += 2;
  } else {
    buf[start + 1] = maskBit | 127;
    buf.writeUInt32BE(Math.floor(n / 2 ** 32), p);
    buf.writeUInt32BE(n >>> 0, p + 4);
    p += 8;
  }
  if (masking === 'random') {
    const k = nextKey();
    k.copy(buf, p);
    if (n > 0) xorInPlace(buf.subarray(headroom), k);
  } else if (masking === 'zero') {
    buf.fill(0, p, p + 4);
  }
  return buf.subarray(start);
}
