import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isRelayError, RelayError } from '../../src/errors/base.ts';
import { decodeFrame, encodeFrame, FrameDecoder } from '../../src/protocol/codec.ts';
import {
  ALL_FLAGS,
  FRAME_HEADER_SIZE,
  type Frame,
  FrameType,
  MAX_FRAME_PAYLOAD,
} from '../../src/protocol/frame.ts';

/** Hex with spaces for readability: "01 00 0001" -> Buffer. */
const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** A decoded frame as plain fields, payload as hex, so toEqual compares bytes. */
const plain = (f: Frame) => ({
  version: f.version,
  type: f.type,
  flags: f.flags,
  streamId: f.streamId,
  length: f.length,
  payload: f.payload.toString('hex'),
});

interface Fixture {
  name: string;
  wire: string;
  frame: {
    type: FrameType;
    flags: number;
    streamId: number;
    length: number;
    payload?: string;
  };
}

//                   ver type flags  stream-id  length     payload
const VALID: Fixture[] = [
  {
    name: 'DATA+SYN on stream 1 with 2 bytes',
    wire: '01 00 0001 00000001 00000002 6869',
    frame: { type: FrameType.DATA, flags: 0x1, streamId: 1, length: 2, payload: '6869' },
  },
  {
    name: 'DATA+FIN empty on stream 0xfffffffe',
    wire: '01 00 0004 fffffffe 00000000',
    frame: { type: FrameType.DATA, flags: 0x4, streamId: 0xfffffffe, length: 0 },
  },
  {
    name: 'WINDOW_UPDATE+ACK delta 256 KiB on stream 3',
    wire: '01 01 0002 00000003 00040000',
    frame: { type: FrameType.WINDOW_UPDATE, flags: 0x2, streamId: 3, length: 0x40000 },
  },
  {
    name: 'WINDOW_UPDATE+RST code CANCEL on stream 5',
    wire: '01 01 0008 00000005 00000004',
    frame: { type: FrameType.WINDOW_UPDATE, flags: 0x8, streamId: 5, length: 4 },
  },
  {
    name: 'PING+SYN opaque 0x12345678',
    wire: '01 02 0001 00000000 12345678',
    frame: { type: FrameType.PING, flags: 0x1, streamId: 0, length: 0x12345678 },
  },
  {
    name: 'PING+ACK opaque 0xffffffff',
    wire: '01 02 0002 00000000 ffffffff',
    frame: { type: FrameType.PING, flags: 0x2, streamId: 0, length: 0xffffffff },
  },
  {
    name: 'GO_AWAY code GOING_AWAY',
    wire: '01 03 0000 00000000 00000005',
    frame: { type: FrameType.GO_AWAY, flags: 0, streamId: 0, length: 5 },
  },
];

interface BadFixture {
  name: string;
  wire: string;
  code: string;
  /** What FrameDecoder (byte stream) reports, when it differs from the one-message decode. */
  streamCode?: string | 'incomplete';
}

const MALFORMED: BadFixture[] = [
  { name: 'version 0', wire: '00 00 0000 00000001 00000000', code: 'ERR_PROTOCOL_BAD_VERSION' },
  { name: 'version 2', wire: '02 02 0001 00000000 00000000', code: 'ERR_PROTOCOL_BAD_VERSION' },
  { name: 'unknown type 4', wire: '01 04 0000 00000001 00000000', code: 'ERR_PROTOCOL_BAD_TYPE' },
  { name: 'unknown type 255', wire: '01 ff 0000 00000000 00000000', code: 'ERR_PROTOCOL_BAD_TYPE' },
  { name: 'flag bit 0x10', wire: '01 01 0010 00000001 00000001', code: 'ERR_PROTOCOL_BAD_FLAGS' },
  { name: 'flag bit 0x8000', wire: '01 02 8001 00000000 00000000', code: 'ERR_PROTOCOL_BAD_FLAGS' },
  {
    name: 'PING on stream 1',
    wire: '01 02 0001 00000001 00000000',
    code: 'ERR_PROTOCOL_BAD_STREAM_ID',
  },
  {
    name: 'GO_AWAY on stream 7',
    wire: '01 03 0000 00000007 00000000',
    code: 'ERR_PROTOCOL_BAD_STREAM_ID',
  },
  {
    name: 'DATA on stream 0',
    wire: '01 00 0000 00000000 00000001 aa',
    code: 'ERR_PROTOCOL_BAD_STREAM_ID',
  },
  {
    name: 'WINDOW_UPDATE on stream 0',
    wire: '01 01 0000 00000000 00001000',
    code: 'ERR_PROTOCOL_BAD_STREAM_ID',
  },
  {
    // Judged from the header alone: the receiver must not wait for 64 KiB + 1 bytes.
    name: 'DATA of MAX_FRAME_PAYLOAD + 1',
    wire: '01 00 0000 00000001 00010001',
    code: 'ERR_PROTOCOL_FRAME_TOO_LARGE',
  },
  {
    name: 'DATA of 4 GiB - 1',
    wire: '01 00 0000 00000001 ffffffff',
    code: 'ERR_PROTOCOL_FRAME_TOO_LARGE',
  },
  {
    name: 'message shorter than a header',
    wire: '01 00 0000 000000',
    code: 'ERR_PROTOCOL_TRUNCATED',
    streamCode: 'incomplete',
  },
  {
    name: 'DATA shorter than its length',
    wire: '01 00 0000 00000001 00000004 aabb',
    code: 'ERR_PROTOCOL_TRUNCATED',
    streamCode: 'incomplete',
  },
  {
    // On a byte stream the extra bytes are the start of the next frame.
    name: 'DATA longer than its length',
    wire: '01 00 0000 00000001 00000001 aabb',
    code: 'ERR_PROTOCOL_TRUNCATED',
    streamCode: 'incomplete',
  },
  {
    name: 'PING with trailing bytes',
    wire: '01 02 0001 00000000 00000000 00',
    code: 'ERR_PROTOCOL_TRUNCATED',
    streamCode: 'incomplete',
  },
];

describe('codec fixtures', () => {
  it.each(VALID)('encodes and decodes $name', ({ wire, frame }) => {
    const payload = frame.payload === undefined ? undefined : hex(frame.payload);
    const encoded = encodeFrame(frame.type, frame.flags, frame.streamId, frame.length, payload);
    expect(encoded.toString('hex')).toBe(hex(wire).toString('hex'));
    const decoded = decodeFrame(hex(wire));
    expect(decoded).not.toBeInstanceOf(RelayError);
    expect(plain(decoded as Frame)).toEqual({ version: 1, payload: '', ...frame });
  });

  it.each(MALFORMED)('rejects $name with $code', ({ wire, code, streamCode }) => {
    const decoded = decodeFrame(hex(wire));
    expect(decoded).toBeInstanceOf(RelayError);
    expect((decoded as RelayError).code).toBe(code);

    const decoder = new FrameDecoder();
    const out = decoder.push(hex(wire));
    const expected = streamCode ?? code;
    if (expected === 'incomplete') {
      // A byte stream cannot tell yet; the end of input tells.
      expect(out.every((x) => !(x instanceof RelayError))).toBe(true);
      expect(decoder.end()?.code).toBe('ERR_PROTOCOL_TRUNCATED');
    } else {
      const last = out.at(-1);
      expect(last).toBeInstanceOf(RelayError);
      expect((last as RelayError).code).toBe(expected);
      // The decoder stays failed.
      expect((decoder.push(hex(VALID[0]!.wire))[0] as RelayError).code).toBe(expected);
    }
  });

  it('accepts a DATA frame of exactly MAX_FRAME_PAYLOAD bytes', () => {
    const payload = Buffer.alloc(MAX_FRAME_PAYLOAD, 0xab);
    const msg = encodeFrame(FrameType.DATA, 0, 9, payload.length, payload);
    const decoded = decodeFrame(msg);
    expect(isRelayError(decoded)).toBe(false);
    expect((decoded as Frame).payload.equals(payload)).toBe(true);
  });

  it('honours a smaller receiver maximum', () => {
    const msg = encodeFrame(FrameType.DATA, 0, 1, 5, Buffer.alloc(5));
    expect((decodeFrame(msg, 4) as RelayError).code).toBe('ERR_PROTOCOL_FRAME_TOO_LARGE');
    expect((new FrameDecoder(4).push(msg)[0] as RelayError).code).toBe(
      'ERR_PROTOCOL_FRAME_TOO_LARGE',
    );
  });
});

// ---- properties ----

const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const flags = fc.integer({ min: 0, max: ALL_FLAGS });
/** Mostly small payloads (fast), sometimes up to the maximum. */
const payloadArb = fc.oneof(
  { weight: 9, arbitrary: fc.uint8Array({ maxLength: 64 }) },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 1000, maxLength: MAX_FRAME_PAYLOAD }) },
);

/** Any frame the codec must accept: the shape a correct peer may send. */
const frameArb: fc.Arbitrary<Frame> = fc.oneof(
  fc
    .record({ flags, streamId: fc.integer({ min: 1, max: 0xffff_ffff }), payload: payloadArb })
    .map(({ flags: fl, streamId, payload }) => ({
      version: 1,
      type: FrameType.DATA,
      flags: fl,
      streamId,
      length: payload.length,
      payload: Buffer.from(payload),
    })),
  fc
    .record({ flags, streamId: fc.integer({ min: 1, max: 0xffff_ffff }), length: u32 })
    .map((r) => ({ version: 1, type: FrameType.WINDOW_UPDATE, ...r, payload: Buffer.alloc(0) })),
  fc
    .record({
      type: fc.constantFrom(FrameType.PING, FrameType.GO_AWAY),
      flags,
      length: u32,
    })
    .map((r) => ({ version: 1, ...r, streamId: 0, payload: Buffer.alloc(0) })),
);

const encode = (f: Frame): Buffer =>
  encodeFrame(
    f.type,
    f.flags,
    f.streamId,
    f.length,
    f.type === FrameType.DATA ? f.payload : undefined,
  );

/** Every result is a frame or a RelayError with a protocol code; nothing else. */
function expectFramesOrProtocolError(out: Array<Frame | RelayError>): void {
  for (const [i, x] of out.entries()) {
    if (x instanceof RelayError) {
      expect(x.code).toMatch(/^ERR_PROTOCOL_/);
      expect(i).toBe(out.length - 1); // an error ends the output
    } else {
      expect(x.version).toBe(1);
      expect(x.type).toBeLessThanOrEqual(FrameType.GO_AWAY);
    }
  }
}

describe('codec properties', () => {
  it('decodeFrame(encode(x)) equals x', () => {
    fc.assert(
      fc.property(frameArb, (frame) => {
        const decoded = decodeFrame(encode(frame));
        expect(decoded).not.toBeInstanceOf(RelayError);
        expect(plain(decoded as Frame)).toEqual(plain(frame));
      }),
      { numRuns: 300 },
    );
  });

  it('FrameDecoder yields the same frames wherever the byte stream is split', () => {
    fc.assert(
      fc.property(
        fc.array(
          frameArb.filter((f) => f.payload.length <= 64),
          { minLength: 1, maxLength: 6 },
        ),
        (frames) => {
          const wire = Buffer.concat(frames.map(encode));
          const expected = frames.map(plain);
          // Every single split point, and bytes dribbled one at a time.
          for (let cut = 0; cut <= wire.length; cut++) {
            const d = new FrameDecoder();
            const got = [...d.push(wire.subarray(0, cut)), ...d.push(wire.subarray(cut))];
            expect(got.map((f) => plain(f as Frame))).toEqual(expected);
            expect(d.end()).toBeUndefined();
          }
          const d = new FrameDecoder();
          const got: Array<Frame | RelayError> = [];
          for (const byte of wire) got.push(...d.push(Buffer.from([byte])));
          expect(got.map((f) => plain(f as Frame))).toEqual(expected);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('random bytes never throw: frames or one ERR_PROTOCOL_* error', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 200 }),
        fc.array(fc.integer({ min: 1, max: 50 }), { maxLength: 10 }),
        (bytes, cuts) => {
          const buf = Buffer.from(bytes);
          const one = decodeFrame(buf);
          if (one instanceof RelayError) expect(one.code).toMatch(/^ERR_PROTOCOL_/);
          const d = new FrameDecoder();
          const out: Array<Frame | RelayError> = [];
          let offset = 0;
          for (const size of [...cuts, buf.length]) {
            out.push(...d.push(buf.subarray(offset, offset + size)));
            offset += size;
            if (offset >= buf.length) break;
          }
          expectFramesOrProtocolError(out);
          const end = d.end();
          if (end !== undefined) expect(end.code).toMatch(/^ERR_PROTOCOL_/);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('random headers in front of valid frames never throw', () => {
    // Random bytes rarely make a valid header; bias them towards the valid space.
    const header = fc
      .record({
        version: fc.constantFrom(0, 1, 1, 1, 2),
        type: fc.integer({ min: 0, max: 5 }),
        flags: fc.integer({ min: 0, max: 0x1f }),
        streamId: fc.constantFrom(0, 1, 2, 0xffff_ffff),
        length: fc.constantFrom(0, 1, 12, MAX_FRAME_PAYLOAD, MAX_FRAME_PAYLOAD + 1, 0xffff_ffff),
      })
      .map((h) => {
        const b = Buffer.alloc(FRAME_HEADER_SIZE);
        b[0] = h.version;
        b[1] = h.type;
        b.writeUInt16BE(h.flags, 2);
        b.writeUInt32BE(h.streamId, 4);
        b.writeUInt32BE(h.length, 8);
        return b;
      });
    fc.assert(
      fc.property(fc.array(fc.oneof(header, frameArb.map(encode)), { maxLength: 8 }), (parts) => {
        const wire = Buffer.concat(parts);
        const d = new FrameDecoder();
        expectFramesOrProtocolError(d.push(wire));
        for (const part of parts) {
          const one = decodeFrame(part);
          if (one instanceof RelayError) expect(one.code).toMatch(/^ERR_PROTOCOL_/);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('truncated encodings are TRUNCATED, never a frame, never a throw', () => {
    fc.assert(
      fc.property(frameArb, fc.nat(), (frame, n) => {
        const wire = encode(frame);
        const cut = n % wire.length; // strictly shorter
        const one = decodeFrame(wire.subarray(0, cut));
        expect((one as RelayError).code).toBe('ERR_PROTOCOL_TRUNCATED');
        const d = new FrameDecoder();
        expect(d.push(wire.subarray(0, cut))).toEqual([]);
        expect(d.end()?.code).toBe(cut === 0 ? undefined : 'ERR_PROTOCOL_TRUNCATED');
      }),
      { numRuns: 300 },
    );
  });

  it('decoder memory stays bounded: buffered <= header + max payload', () => {
    const maxPayload = 1024; // small, so that random input can reach the bound
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            frameArb.filter((f) => f.payload.length <= maxPayload).map((f) => [...encode(f)]),
            fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 300 }),
          ),
          { maxLength: 10 },
        ),
        fc.integer({ min: 1, max: 2000 }),
        (parts, chunkSize) => {
          const wire = Buffer.from(parts.flat());
          const d = new FrameDecoder(maxPayload);
          for (let i = 0; i < wire.length; i += chunkSize) {
            const out = d.push(wire.subarray(i, i + chunkSize));
            if (out.at(-1) instanceof RelayError) break;
            expect(d.buffered).toBeLessThanOrEqual(FRAME_HEADER_SIZE + maxPayload);
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});
