import type { Duplex } from 'node:stream';
import { WireCode } from '@relaymesh/shared';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createMemoryPair, Session, StreamTransport } from '../../src/index.ts';
import { duplexPair } from '../../src/proxy/splice.ts';
import { nextStream, until } from '../mux/helpers.ts';

// A stream the proxy resets while its reader is paused (a parked response: the client
// stopped reading) keeps unread body chunks in its readable buffer. Node does not empty a
// destroyed Readable's buffer, and the entry holds the stream object while the response is
// parked, so each parked client kept 64-128 KiB (docs/reliability.md "Slow clients").

const sessions: Session[] = [];
afterEach(() => {
  for (const s of sessions.splice(0)) s.destroy();
});

/** Writes `bytes` in 32 KiB chunks into `writer` while `reader` is paused, until `reader` holds them. */
/** 'close', whether or not an error came first (events.once would reject on 'error'). */
function closed(stream: Duplex): Promise<void> {
  return new Promise((resolve) => stream.once('close', () => resolve()));
}

async function fillPaused(writer: Duplex, reader: Duplex, bytes: number): Promise<void> {
  reader.pause();
  for (let sent = 0; sent < bytes; sent += 32 * 1024) writer.write(Buffer.alloc(32 * 1024, 7));
  await until(() => reader.readableLength >= bytes, 5000, 'reader buffered the chunks');
}

describe('a reset stream lets go of its unread data', () => {
  it('in-process pair (the entry is its own exit)', async () => {
    const [exitEnd, entryEnd] = duplexPair();
    entryEnd.on('error', () => {});
    exitEnd.on('error', () => {});
    await fillPaused(exitEnd, entryEnd, 64 * 1024);
    expect(entryEnd.readableLength).toBeGreaterThanOrEqual(64 * 1024);
    const done = closed(entryEnd);
    entryEnd.destroy();
    await done;
    expect(entryEnd.readableLength).toBe(0);
  });

  it('drops the chunks without joining them into a copy first', async () => {
    // read() would return every buffered chunk as one new buffer: ~72 KiB allocated per
    // parked slow client only to be thrown away.
    const [exitEnd, entryEnd] = duplexPair();
    entryEnd.on('error', () => {});
    exitEnd.on('error', () => {});
    await fillPaused(exitEnd, entryEnd, 64 * 1024); // two chunks of 32 KiB
    const done = closed(entryEnd);
    const alloc = vi.spyOn(Buffer, 'allocUnsafe');
    try {
      entryEnd.destroy();
      await done;
      expect(entryEnd.readableLength).toBe(0);
      expect(alloc.mock.calls.filter(([n]) => n >= 32 * 1024)).toEqual([]);
    } finally {
      alloc.mockRestore();
    }
  });

  it('multiplexed tunnel stream, reset by the reader or by the peer', async () => {
    const [a, b] = createMemoryPair();
    const client = new Session({ transport: new StreamTransport(a), role: 'client' });
    const server = new Session({ transport: new StreamTransport(b), role: 'server' });
    sessions.push(client, server);
    for (const resetBy of ['reader', 'peer'] as const) {
      const inbound = nextStream(server);
      const out = client.open();
      out.on('error', () => {});
      out.write('hello');
      const s = await inbound;
      s.on('error', () => {});
      await fillPaused(out, s, 64 * 1024);
      const done = closed(s);
      if (resetBy === 'reader') s.reset(WireCode.CANCEL);
      else out.reset(WireCode.CANCEL);
      await done;
      expect(s.readableLength, resetBy).toBe(0);
    }
  });
});
