import {
  decodeFrame,
  encodeFrame,
  Flag,
  type Frame,
  FrameDecoder,
  FrameType,
  isRelayError,
} from '@relaymesh/shared';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  createMemoryPair,
  type FrameTransport,
  type FrameTransportHandlers,
  StreamTransport,
} from '../../src/index.ts';
import { Scheduler, StreamSendQueue } from '../../src/mux/scheduler.ts';
import { until } from './helpers.ts';

function recorder() {
  const frames: Frame[] = [];
  const errors: Error[] = [];
  let drains = 0;
  let closes = 0;
  const handlers: FrameTransportHandlers = {
    frame: (f) => frames.push(f),
    error: (e) => errors.push(e),
    drain: () => drains++,
    close: () => closes++,
  };
  return { handlers, frames, errors, drains: () => drains, closes: () => closes };
}

describe('StreamTransport', () => {
  it('delivers frames split across arbitrary chunk boundaries', async () => {
    const [a, b] = createMemoryPair();
    const t = new StreamTransport(a);
    const r = recorder();
    t.start(r.handlers);
    const bytes = Buffer.concat([
      encodeFrame(FrameType.PING, Flag.SYN, 0, 1),
      encodeFrame(FrameType.DATA, 0, 1, 5, Buffer.from('hello')),
      encodeFrame(FrameType.WINDOW_UPDATE, Flag.ACK, 1, 1000),
    ]);
    for (let i = 0; i < bytes.length; i += 7) b.write(bytes.subarray(i, i + 7));
    await until(() => r.frames.length === 3);
    expect(r.frames.map((f) => f.type)).toEqual([
      FrameType.PING,
      FrameType.DATA,
      FrameType.WINDOW_UPDATE,
    ]);
    expect(r.frames[1]!.payload.toString()).toBe('hello');
    t.destroy();
    await until(() => r.closes() === 1);
  });

  it('send returns false above the high-water mark, then drain fires', async () => {
    const [a, b] = createMemoryPair(64 * 1024);
    const t = new StreamTransport(a, { highWaterMark: 128 * 1024 });
    const r = recorder();
    t.start(r.handlers);
    const frame = encodeFrame(FrameType.DATA, 0, 1, 16 * 1024, Buffer.alloc(16 * 1024));
    let sent = 0;
    while (t.send(frame)) {
      sent++;
      expect(sent).toBeLessThan(100);
    }
    expect(t.bufferedAmount).toBeGreaterThanOrEqual(128 * 1024 - 64 * 1024);
    expect(r.drains()).toBe(0);
    b.resume();
    await until(() => r.drains() === 1);
    t.destroy();
  });

  it('end() flushes queued frames before closing, close fires once', async () => {
    const [a, b] = createMemoryPair();
    const t = new StreamTransport(a);
    const r = recorder();
    t.start(r.handlers);
    const decoder = new FrameDecoder();
    const got: Frame[] = [];
    b.on('data', (c: Buffer) => {
      for (const f of decoder.push(c)) if (!(f instanceof Error)) got.push(f);
    });
    b.on('end', () => b.end());
    t.cork();
    for (let i = 1; i <= 10; i++) t.send(encodeFrame(FrameType.PING, Flag.SYN, 0, i));
    t.end();
    t.end();
    await until(() => r.closes() === 1);
    expect(got.map((f) => f.length)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    t.destroy();
    expect(r.closes()).toBe(1);
  });

  it('reports a decode error once, then closes', async () => {
    const [a, b] = createMemoryPair();
    const t = new StreamTransport(a);
    const r = recorder();
    t.start(r.handlers);
    const bad = encodeFrame(FrameType.PING, Flag.SYN, 0, 1);
    bad[0] = 9;
    b.write(bad);
    b.write(bad);
    await until(() => r.errors.length === 1);
    expect(isRelayError(r.errors[0], 'ERR_PROTOCOL_BAD_VERSION')).toBe(true);
    await until(() => r.closes() === 1, 3000);
    expect(r.errors).toHaveLength(1);
  });

  it('a peer that stops inside a frame is ERR_PROTOCOL_TRUNCATED', async () => {
    const [a, b] = createMemoryPair();
    const t = new StreamTransport(a);
    const r = recorder();
    t.start(r.handlers);
    b.end(encodeFrame(FrameType.DATA, 0, 1, 10, Buffer.alloc(10)).subarray(0, 15));
    await until(() => r.errors.length === 1);
    expect(isRelayError(r.errors[0], 'ERR_PROTOCOL_TRUNCATED')).toBe(true);
    await until(() => r.closes() === 1, 3000);
  });
});

/** A FrameTransport that records what it is given; `accept` decides what `send` returns. */
class RecordingTransport implements FrameTransport {
  readonly description = 'recording';
  readonly sent: Buffer[] = [];
  bufferedAmount = 0;
  readonly #accept: () => boolean;
  constructor(accept: () => boolean) {
    this.#accept = accept;
  }
  start(): void {}
  send(frame: Buffer): boolean {
    this.sent.push(Buffer.from(frame));
    return this.#accept();
  }
  cork(): void {}
  uncork(): void {}
  pause(): void {}
  resume(): void {}
  end(): void {}
  destroy(): void {}
}

describe('Scheduler framing (property)', () => {
  it('cuts any sequence of writes into ≤ frameSize DATA frames, in order, FIN last', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: 40_000 }), { minLength: 1, maxLength: 8 }),
        fc.integer({ min: 512, max: 20_000 }),
        fc.integer({ min: 1, max: 5 }),
        async (sizes, frameSize, acceptEvery) => {
          let n = 0;
          const transport = new RecordingTransport(() => ++n % acceptEvery !== 0);
          const scheduler = new Scheduler(transport, frameSize);
          const queue = new StreamSendQueue(7, () => {});
          const input = Buffer.concat(sizes.map((s, i) => Buffer.alloc(s, i + 1)));
          let off = 0;
          for (const s of sizes) {
            queue.push(input.subarray(off, off + s));
            off += s;
          }
          queue.fin = true;
          scheduler.enqueue(queue);
          // At most one frame per flush (one event-loop turn) when acceptEvery is 1: 320 KB / 512 B frames.
          for (let i = 0; i < 2000 && queue.hasWork; i++) {
            await new Promise((r) => setImmediate(r));
            if (scheduler.blocked) scheduler.drain();
          }
          expect(queue.hasWork).toBe(false);
          const frames = transport.sent.map((b) => decodeFrame(b));
          const data: Buffer[] = [];
          frames.forEach((f, i) => {
            if (f instanceof Error) throw f;
            expect(f.type).toBe(FrameType.DATA);
            expect(f.streamId).toBe(7);
            expect(f.payload.length).toBeLessThanOrEqual(frameSize);
            expect(f.flags).toBe(i === frames.length - 1 ? Flag.FIN : 0);
            data.push(f.payload);
          });
          expect(Buffer.concat(data).equals(input)).toBe(true);
        },
      ),
      { numRuns: 40 },
    );
  });

  it('serves streams round-robin, one frame per turn', async () => {
    const transport = new RecordingTransport(() => true);
    const scheduler = new Scheduler(transport, 1000);
    const queues = [1, 3, 5].map((id) => new StreamSendQueue(id, () => {}));
    for (const q of queues) {
      q.push(Buffer.alloc(3000));
      scheduler.enqueue(q);
    }
    scheduler.control(FrameType.PING, Flag.SYN, 0, 1);
    await new Promise((r) => setImmediate(r));
    const order = transport.sent.map((b) => b.readUInt32BE(4));
    // The control frame went first (stream 0), then 1,3,5 in turns.
    expect(order).toEqual([0, 1, 3, 5, 1, 3, 5, 1, 3, 5]);
  });
});

describe('createMemoryPair', () => {
  it('holds a writer while the reader is behind and releases it on read', async () => {
    const [a, b] = createMemoryPair(16 * 1024);
    let completed = 0;
    for (let i = 0; i < 8; i++) a.write(Buffer.alloc(8 * 1024), () => completed++);
    await new Promise((r) => setTimeout(r, 20));
    expect(completed).toBeLessThan(8);
    let read = 0;
    b.on('data', (c: Buffer) => {
      read += c.length;
    });
    await until(() => completed === 8 && read === 64 * 1024);
    a.destroy();
  });

  it('ending one end ends the other readable side; destroying one destroys both', async () => {
    const [a, b] = createMemoryPair();
    const ended = new Promise((r) => b.once('end', r));
    b.resume();
    a.end();
    await ended;
    const closed = new Promise((r) => a.once('close', r));
    b.destroy();
    await closed;
    expect(a.destroyed).toBe(true);
  });
});
