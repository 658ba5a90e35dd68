import { decodeFrame, FrameType, isRelayError } from '@relaymesh/shared';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { FrameTransport } from '../../src/index.ts';
import { Scheduler, StreamSendQueue } from '../../src/mux/scheduler.ts';
import { SLAB_SIZE, SlabPool } from '../../src/mux/slab-pool.ts';

interface Held {
  buf: Buffer;
  /** Copy of the bytes as handed over: they must not change until released. */
  snapshot: Buffer;
  written: (() => void) | undefined;
}

/**
 * A FrameTransport whose write callbacks the test releases when it wants, and which
 * checks at every send that the new frame's memory overlaps no frame still held.
 */
class HoldingTransport implements FrameTransport {
  readonly description = 'holding';
  readonly headroom: number;
  readonly held: Held[] = [];
  readonly payload: Buffer[] = [];
  readonly buffers = new Set<ArrayBufferLike>();
  overlaps = 0;
  changed = 0;
  bufferedAmount = 0;
  readonly #callsWritten: boolean;

  constructor(headroom: number, callsWritten = true) {
    this.headroom = headroom;
    this.#callsWritten = callsWritten;
  }

  /** Per slab, which bytes belong to a frame still held (1) or not (0). */
  readonly #marks = new Map<ArrayBufferLike, Uint8Array>();

  start(): void {}
  send(buf: Buffer, written?: () => void): boolean {
    let marks = this.#marks.get(buf.buffer);
    if (marks === undefined) {
      marks = new Uint8Array(buf.buffer.byteLength);
      this.#marks.set(buf.buffer, marks);
    }
    const range = marks.subarray(buf.byteOffset, buf.byteOffset + buf.length);
    if (range.some((m) => m !== 0)) this.overlaps++;
    range.fill(1);
    this.buffers.add(buf.buffer);
    const f = decodeFrame(buf.subarray(this.headroom));
    if (isRelayError(f)) throw f;
    if (f.type === FrameType.DATA) this.payload.push(Buffer.from(f.payload));
    this.held.push({ buf, snapshot: Buffer.from(buf), written });
    return true;
  }
  /** Releases the held frame at `i` (checking its bytes first), as a socket write callback would. */
  release(i: number): void {
    const [h] = this.held.splice(i, 1);
    if (!h) return;
    if (!h.buf.equals(h.snapshot)) this.changed++;
    this.#marks.get(h.buf.buffer)!.fill(0, h.buf.byteOffset, h.buf.byteOffset + h.buf.length);
    if (this.#callsWritten) h.written?.();
  }
  cork(): void {}
  uncork(): void {}
  pause(): void {}
  resume(): void {}
  end(): void {}
  destroy(): void {}
}

const turn = () => new Promise((r) => setImmediate(r));

/** Pushes `bytes` of a running counter pattern through `scheduler` on stream `q`. */
async function push(scheduler: Scheduler, q: StreamSendQueue, bytes: number, seq: { n: number }) {
  const chunk = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) chunk[i] = seq.n++ & 255;
  q.push(chunk);
  scheduler.enqueue(q);
  for (let i = 0; i < 1000 && q.hasWork; i++) await turn();
}

function counterPattern(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = i & 255;
  return b;
}

describe('slab reuse in the scheduler', () => {
  it('reuses a slab only after every frame cut from it was released', async () => {
    const pool = new SlabPool(4);
    const t = new HoldingTransport(14);
    const scheduler = new Scheduler(t, 16 * 1024, pool);
    const q = new StreamSendQueue(1, () => {});
    const seq = { n: 0 };
    // 1 MiB with everything held: 8+ slabs, none reusable yet.
    await push(scheduler, q, 1024 * 1024, seq);
    expect(pool.stats.reused).toBe(0);
    const firstSlabs = new Set(t.buffers);
    expect(firstSlabs.size).toBeGreaterThanOrEqual(8);
    // Release all but the last frame of each slab: still nothing may be reused.
    const lastOfSlab = new Map<ArrayBufferLike, Held>();
    for (const h of t.held) lastOfSlab.set(h.buf.buffer, h);
    for (let i = t.held.length - 1; i >= 0; i--) {
      if (lastOfSlab.get(t.held[i]!.buf.buffer) !== t.held[i]) t.release(i);
    }
    await push(scheduler, q, 512 * 1024, seq);
    expect(pool.stats.reused).toBe(0);
    // Now release everything: the retired slabs come back (up to the pool's 4) and are cut again.
    while (t.held.length > 0) t.release(0);
    expect(pool.freeCount).toBe(4);
    const before = new Set(t.buffers);
    await push(scheduler, q, 512 * 1024, seq);
    expect(pool.stats.reused).toBeGreaterThan(0);
    expect([...t.buffers].filter((b) => !before.has(b))).toHaveLength(
      pool.stats.allocated - before.size,
    );
    expect(t.overlaps).toBe(0);
    expect(t.changed).toBe(0);
    expect(Buffer.concat(t.payload).equals(counterPattern(seq.n))).toBe(true);
  });

  it('never hands out held memory, whatever order the writes complete in (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            bytes: fc.integer({ min: 1, max: 200_000 }),
            // Which held frames complete after this push: a fraction, from the front or at random.
            release: fc.double({ min: 0, max: 1, noNaN: true }),
            order: fc.constantFrom('oldest', 'newest', 'scattered'),
          }),
          { minLength: 1, maxLength: 12 },
        ),
        fc.integer({ min: 0, max: 14 }),
        fc.integer({ min: 100, max: 20_000 }),
        async (steps, headroom, frameSize) => {
          const pool = new SlabPool(3);
          const t = new HoldingTransport(headroom);
          const scheduler = new Scheduler(t, frameSize, pool);
          const q = new StreamSendQueue(3, () => {});
          const seq = { n: 0 };
          for (const step of steps) {
            await push(scheduler, q, step.bytes, seq);
            let n = Math.floor(t.held.length * step.release);
            while (n-- > 0) {
              const i =
                step.order === 'oldest'
                  ? 0
                  : step.order === 'newest'
                    ? t.held.length - 1
                    : (n * 7919) % t.held.length;
              t.release(i);
            }
          }
          expect(t.overlaps).toBe(0);
          expect(t.changed).toBe(0);
          expect(Buffer.concat(t.payload).equals(counterPattern(seq.n))).toBe(true);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('a transport that never reports its writes done gets fresh slabs only', async () => {
    const pool = new SlabPool(4);
    const t = new HoldingTransport(0, false);
    const scheduler = new Scheduler(t, 16 * 1024, pool);
    const q = new StreamSendQueue(5, () => {});
    const seq = { n: 0 };
    await push(scheduler, q, 600 * 1024, seq);
    while (t.held.length > 0) t.release(0);
    await push(scheduler, q, 600 * 1024, seq);
    expect(pool.stats.reused).toBe(0);
    expect(pool.stats.allocated).toBe(t.buffers.size);
    expect(t.buffers.size).toBeGreaterThanOrEqual(Math.floor((1200 * 1024) / SLAB_SIZE));
  });

  it('control frames share the slabs and are released like DATA', async () => {
    const pool = new SlabPool(4);
    const t = new HoldingTransport(10);
    const scheduler = new Scheduler(t, 16 * 1024, pool);
    // 22-byte frames, 5,957 per slab: 8,000 take 2 slabs; the first is retired.
    for (let i = 0; i < 8000; i++) scheduler.control(FrameType.PING, 0, 0, i);
    await turn();
    expect(pool.stats.allocated).toBe(2);
    while (t.held.length > 0) t.release(t.held.length - 1);
    expect(pool.freeCount).toBe(1);
    // The current slab's remaining 3,914, then the first slab again.
    for (let i = 0; i < 8000; i++) scheduler.control(FrameType.PING, 0, 0, i);
    await turn();
    expect(pool.stats.allocated).toBe(2);
    expect(pool.stats.reused).toBe(1);
    expect(t.overlaps).toBe(0);
  });
});
