import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { decodeFrame, FrameType, isRelayError } from '@relaymesh/shared';
import { afterEach, describe, expect, it } from 'vitest';
import * as wsModule from 'ws';
import type { MuxStream, Tunnel } from '../../src/index.ts';
import { frameInPlace, type WsMasking, wsHeadroom } from '../../src/tunnel/ws-frame.ts';
import { collect, within } from '../mux/helpers.ts';
import { makeDialer, Resources, startListener, tapProxy } from './helpers.ts';

const r = new Resources();
afterEach(() => r.closeAll());

/** ws's own frame parser (what every peer runs), as a server or a client would. */
type WsReceiver = Writable & { on(event: 'message', cb: (data: Buffer) => void): WsReceiver };
const Receiver = (
  wsModule as unknown as {
    Receiver: new (o: { isServer: boolean; maxPayload: number }) => WsReceiver;
  }
).Receiver;

/** Feeds `bytes` to a ws Receiver; resolves with its messages, rejects on its error. */
async function parseWithWs(bytes: Buffer, isServer: boolean, count: number): Promise<Buffer[]> {
  const rx = new Receiver({ isServer, maxPayload: 0 });
  const messages: Buffer[] = [];
  const failed = new Promise<never>((_, reject) => rx.on('error', reject));
  rx.on('message', (m: Buffer) => messages.push(Buffer.from(m)));
  rx.write(bytes);
  await Promise.race([
    within(
      new Promise<void>((res) => {
        const check = () => (messages.length >= count ? res() : setImmediate(check));
        check();
      }),
      2000,
      `${count} messages`,
    ),
    failed,
  ]);
  return messages;
}

/** The WebSocket frame headers in `bytes`: whether masked, and the key. */
function headers(bytes: Buffer): Array<{ masked: boolean; key: string; length: number }> {
  const out: Array<{ masked: boolean; key: string; length: number }> = [];
  let p = 0;
  while (p < bytes.length) {
    const masked = (bytes[p + 1]! & 0x80) !== 0;
    let length = bytes[p + 1]! & 0x7f;
    p += 2;
    if (length === 126) {
      length = bytes.readUInt16BE(p);
      p += 2;
    } else if (length === 127) {
      length = Number(bytes.readBigUInt64BE(p));
      p += 8;
    }
    const key = masked ? bytes.subarray(p, p + 4).toString('hex') : '';
    if (masked) p += 4;
    out.push({ masked, key, length });
    p += length;
  }
  return out;
}

/** Each buffer equal to its counterpart (toEqual on 200 kB buffers is slow). */
function same(a: Buffer[], b: Buffer[]): boolean {
  return a.length === b.length && a.every((x, i) => x.equals(b[i]!));
}

/** A frame behind `headroom` scratch bytes, as the scheduler hands it over. */
function inSlab(payload: Buffer, headroom: number): Buffer {
  const b = Buffer.alloc(headroom + payload.length, 0xee);
  payload.copy(b, headroom);
  return b;
}

// 0 and 125: 7-bit length; 126 and 65535: 16-bit; 65536 and 65548 (the largest relaymux
// frame: 64 KiB payload + 12-byte header): 64-bit.
const SIZES = [0, 1, 3, 125, 126, 4000, 65535, 65536, 65548];

describe('frameInPlace', () => {
  const payloads = SIZES.map((n) =>
    Buffer.from(Array.from({ length: n }, (_, i) => (i * 7) & 255)),
  );

  it('random masking: ws parses every size as a server must (MASK set), keys differ', async () => {
    const h = wsHeadroom('random');
    const wire = Buffer.concat(
      payloads.map((p) => Buffer.from(frameInPlace(inSlab(p, h), h, 'random'))),
    );
    const got = await parseWithWs(wire, true, payloads.length);
    expect(same(got, payloads)).toBe(true);
    const hs = headers(wire);
    expect(hs.map((x) => x.length)).toEqual(SIZES);
    expect(hs.every((x) => x.masked)).toBe(true);
    expect(new Set(hs.map((x) => x.key)).size).toBe(hs.length);
    // Masked on the wire: the payload is not there in clear (all but the empty one).
    const big = frameInPlace(inSlab(payloads[5]!, h), h, 'random');
    expect(big.subarray(big.length - 4000).equals(payloads[5]!)).toBe(false);
  });

  it('no masking: ws parses every size as a client must (MASK clear)', async () => {
    const h = wsHeadroom('none');
    const wire = Buffer.concat(
      payloads.map((p) => Buffer.from(frameInPlace(inSlab(p, h), h, 'none'))),
    );
    expect(same(await parseWithWs(wire, false, payloads.length), payloads)).toBe(true);
    expect(headers(wire).some((x) => x.masked)).toBe(false);
  });

  it('zero masking: MASK set with an all-zero key, payload in clear', async () => {
    const h = wsHeadroom('zero');
    const wire = Buffer.concat(
      payloads.map((p) => Buffer.from(frameInPlace(inSlab(p, h), h, 'zero'))),
    );
    expect(same(await parseWithWs(wire, true, payloads.length), payloads)).toBe(true);
    expect(headers(wire).every((x) => x.masked && x.key === '00000000')).toBe(true);
  });

  it('a server-side parser rejects unmasked frames (so the tests above can fail)', async () => {
    const h = wsHeadroom('none');
    const wire = Buffer.from(frameInPlace(inSlab(Buffer.from('x'), h), h, 'none'));
    const err = await parseWithWs(wire, true, 1).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/MASK must be set/);
  });

  it('uses only the headroom in front of the frame', () => {
    for (const masking of ['random', 'zero', 'none'] as WsMasking[]) {
      const h = wsHeadroom(masking);
      const slab = Buffer.alloc(8 + h + 70_000, 0xab);
      const frame = slab.subarray(8, 8 + h + 65548);
      const out = frameInPlace(frame, h, masking);
      expect(out.byteOffset).toBeGreaterThanOrEqual(frame.byteOffset);
      expect(out.byteOffset + out.length).toBe(frame.byteOffset + frame.length);
      expect(slab.subarray(0, 8).every((b) => b === 0xab)).toBe(true);
      expect(slab.subarray(8 + h + 65548).every((b) => b === 0xab)).toBe(true);
    }
  });
});

describe('tunnel frames on the wire', () => {
  it('dialer frames are masked with fresh keys, listener frames are not; ws decodes both', async () => {
    const listener = await startListener(r);
    const { port } = new URL(listener.url);
    const tap = await tapProxy(r, { host: '127.0.0.1', port: Number(port) });
    const accepted = once(listener, 'tunnel') as Promise<[Tunnel]>;
    const client = r.add(await makeDialer().dial(tap.url), (t) => t.destroy());
    const [server] = await within(accepted, 3000, 'tunnel');
    server.session.on('stream', (s: MuxStream) => s.pipe(s));
    const data = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 31) & 255));
    const s = client.session.open();
    s.end(data);
    // The real ws server unmasked and parsed our frames, the listener echoed them.
    expect((await collect(s, 5000)).equals(data)).toBe(true);

    for (const [dir, chunks, masked] of [
      ['up', tap.up, true],
      ['down', tap.down, false],
    ] as const) {
      const bytes = Buffer.concat(chunks);
      const body = bytes.subarray(bytes.indexOf('\r\n\r\n') + 4);
      const hs = headers(body);
      expect(hs.length, dir).toBeGreaterThan(20);
      expect(
        hs.every((x) => x.masked === masked),
        dir,
      ).toBe(true);
      if (masked) {
        expect(new Set(hs.map((x) => x.key)).size, dir).toBeGreaterThan(hs.length - 2);
        expect(
          hs.some((x) => x.key === '00000000'),
          dir,
        ).toBe(false);
      }
      // ws's own parser, in the role of the receiving end, reads every message; the
      // messages are relaymux frames; the DATA of stream 1 is the 300 kB, in order.
      const messages = await parseWithWs(body, masked, hs.length);
      const payload: Buffer[] = [];
      // The hello messages come first: HELLO up; CHALLENGE and WELCOME down.
      for (const m of messages.slice(masked ? 1 : 2)) {
        const f = decodeFrame(m);
        if (isRelayError(f)) throw f;
        if (f.type === FrameType.DATA && f.streamId === 1) payload.push(f.payload);
      }
      expect(Buffer.concat(payload).equals(data), dir).toBe(true);
    }
  });
});
