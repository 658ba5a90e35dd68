import { Writable } from 'node:stream';
import {
  createRootLogger,
  encodeFrame,
  Flag,
  type Frame,
  FrameDecoder,
  FrameType,
  isRelayError,
  WireCode,
} from '@relaymesh/shared';
import { afterEach, describe, expect, it } from 'vitest';
import { createMemoryPair, type MuxStream, Session, StreamTransport } from '../../src/index.ts';
import { collect, tick, until, within } from './helpers.ts';

const WINDOW = 256 * 1024;
const QUIET = { keepAliveIntervalMs: 60_000, deadTimeoutMs: 120_000 };

interface LogLine {
  level: number;
  msg: string;
  code?: string;
}

/** A Session (role server) whose peer is a test writing hand-made frames. */
function rawPeer() {
  const [a, b] = createMemoryPair();
  const lines: LogLine[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line));
      cb();
    },
  });
  const logger = createRootLogger({ name: 'test', level: 'debug', destination });
  const session = new Session({
    transport: new StreamTransport(a, { description: 'raw' }),
    role: 'server',
    logger,
    config: QUIET,
  });
  const decoder = new FrameDecoder();
  const frames: Frame[] = [];
  b.on('data', (c: Buffer) => {
    for (const f of decoder.push(c)) if (!(f instanceof Error)) frames.push(f);
  });
  b.on('error', () => {});
  const error = within(
    new Promise<Error>((resolve) => session.once('error', resolve)),
    3000,
    'session error',
  );
  // Only the tests that expect a session error await it; in the others its timer rejects
  // 3 s later, after the file may have ended (the unit files share their worker: an
  // unobserved rejection then fails whichever file runs next).
  error.catch(() => {});
  return {
    session,
    frames,
    lines,
    error,
    send(type: FrameType, flags: number, id: number, length: number, payload?: Buffer) {
      b.write(encodeFrame(type, flags, id, length, payload));
    },
    raw(bytes: Buffer) {
      b.write(bytes);
    },
    goAways: () => frames.filter((f) => f.type === FrameType.GO_AWAY).map((f) => f.length),
    warns: () => lines.filter((l) => l.level === 40),
  };
}

type Peer = ReturnType<typeof rawPeer>;

describe('peer violations', () => {
  let bystander: { client: Session; server: Session } | undefined;
  const peers: Peer[] = [];

  afterEach(async () => {
    for (const p of peers.splice(0)) p.session.destroy();
    bystander?.client.destroy();
    bystander?.server.destroy();
    bystander = undefined;
  });

  function peer(): Peer {
    // A healthy session pair in the same process, checked after every violation.
    const [a, b] = createMemoryPair();
    bystander = {
      client: new Session({ transport: new StreamTransport(a), role: 'client', config: QUIET }),
      server: new Session({ transport: new StreamTransport(b), role: 'server', config: QUIET }),
    };
    bystander.server.on('stream', (s: MuxStream) => s.pipe(s));
    const p = rawPeer();
    peers.push(p);
    return p;
  }

  async function expectViolation(p: Peer, code: string, wire: WireCode): Promise<void> {
    const err = await p.error;
    expect(isRelayError(err, code as never)).toBe(true);
    expect(p.session.state).toBe('destroyed');
    await until(() => p.goAways().length > 0, 2000, 'GO_AWAY on the wire');
    expect(p.goAways()).toEqual([wire]);
    const warns = p.warns();
    expect(warns).toHaveLength(1);
    expect(warns[0]!.code).toBe(code);
    // The bystander session still works.
    const s = bystander!.client.open();
    s.end(Buffer.from('still fine'));
    expect((await collect(s)).toString()).toBe('still fine');
  }

  it('DATA beyond the granted window: ERR_PROTOCOL_WINDOW_EXCEEDED', async () => {
    const p = peer();
    p.session.on('stream', (s: MuxStream) => s.on('error', () => {}));
    p.send(FrameType.WINDOW_UPDATE, Flag.SYN, 1, WINDOW);
    const chunk = Buffer.alloc(16 * 1024);
    for (let i = 0; i < WINDOW / chunk.length; i++)
      p.send(FrameType.DATA, 0, 1, chunk.length, chunk);
    await tick();
    expect(p.session.state).toBe('open');
    p.send(FrameType.DATA, 0, 1, 1, Buffer.alloc(1));
    await expectViolation(p, 'ERR_PROTOCOL_WINDOW_EXCEEDED', WireCode.FLOW_CONTROL_ERROR);
  });

  it('SYN on an open id: ERR_PROTOCOL_DUPLICATE_STREAM', async () => {
    const p = peer();
    p.session.on('stream', (s: MuxStream) => s.on('error', () => {}));
    p.send(FrameType.WINDOW_UPDATE, Flag.SYN, 1, WINDOW);
    p.send(FrameType.WINDOW_UPDATE, Flag.SYN, 1, WINDOW);
    await expectViolation(p, 'ERR_PROTOCOL_DUPLICATE_STREAM', WireCode.PROTOCOL_ERROR);
  });

  it('SYN with the wrong parity: ERR_PROTOCOL_BAD_STREAM_ID', async () => {
    const p = peer();
    p.send(FrameType.WINDOW_UPDATE, Flag.SYN, 2, WINDOW);
    await expectViolation(p, 'ERR_PROTOCOL_BAD_STREAM_ID', WireCode.PROTOCOL_ERROR);
  });

  it('SYN reusing a lower id: ERR_PROTOCOL_BAD_STREAM_ID', async () => {
    const p = peer();
    p.session.on('stream', (s: MuxStream) => s.on('error', () => {}));
    p.send(FrameType.WINDOW_UPDATE, Flag.SYN, 5, WINDOW);
    p.send(FrameType.WINDOW_UPDATE, Flag.RST, 5, WireCode.CANCEL);
    p.send(FrameType.WINDOW_UPDATE, Flag.SYN, 3, WINDOW);
    await expectViolation(p, 'ERR_PROTOCOL_BAD_STREAM_ID', WireCode.PROTOCOL_ERROR);
  });

  it('unknown frame type (decoder): ERR_PROTOCOL_BAD_TYPE', async () => {
    const p = peer();
    const bad = encodeFrame(FrameType.PING, Flag.SYN, 0, 1);
    bad[1] = 9;
    p.raw(bad);
    await expectViolation(p, 'ERR_PROTOCOL_BAD_TYPE', WireCode.PROTOCOL_ERROR);
  });

  it('oversize DATA frame (decoder): ERR_PROTOCOL_FRAME_TOO_LARGE', async () => {
    const p = peer();
    p.send(FrameType.WINDOW_UPDATE, Flag.SYN, 1, WINDOW);
    p.raw(encodeFrame(FrameType.DATA, 0, 1, 100_000));
    await expectViolation(p, 'ERR_PROTOCOL_FRAME_TOO_LARGE', WireCode.PROTOCOL_ERROR);
  });

  it('window update past 2^31-1: ERR_PROTOCOL_WINDOW_OVERFLOW', async () => {
    const p = peer();
    p.session.on('stream', (s: MuxStream) => s.on('error', () => {}));
    p.send(FrameType.WINDOW_UPDATE, Flag.SYN, 1, WINDOW);
    p.send(FrameType.WINDOW_UPDATE, 0, 1, 0x7fff_ffff);
    await expectViolation(p, 'ERR_PROTOCOL_WINDOW_OVERFLOW', WireCode.FLOW_CONTROL_ERROR);
  });

  it('DATA after the peer FIN: ERR_PROTOCOL_UNEXPECTED_FRAME', async () => {
    const p = peer();
    p.session.on('stream', (s: MuxStream) => s.on('error', () => {}));
    p.send(FrameType.WINDOW_UPDATE, Flag.SYN, 1, WINDOW);
    p.send(FrameType.DATA, Flag.FIN, 1, 3, Buffer.from('abc'));
    p.send(FrameType.DATA, 0, 1, 3, Buffer.from('def'));
    await expectViolation(p, 'ERR_PROTOCOL_UNEXPECTED_FRAME', WireCode.PROTOCOL_ERROR);
  });

  it('initial window below the protocol base: ERR_PROTOCOL_BAD_INITIAL_WINDOW', async () => {
    const p = peer();
    p.send(FrameType.WINDOW_UPDATE, Flag.SYN, 1, 1000);
    await expectViolation(p, 'ERR_PROTOCOL_BAD_INITIAL_WINDOW', WireCode.FLOW_CONTROL_ERROR);
  });

  it('a frame for a stream never opened: ERR_PROTOCOL_UNEXPECTED_FRAME', async () => {
    const p = peer();
    p.send(FrameType.DATA, 0, 7, 1, Buffer.alloc(1));
    await expectViolation(p, 'ERR_PROTOCOL_UNEXPECTED_FRAME', WireCode.PROTOCOL_ERROR);
  });

  it('late frames for a stream we reset are ignored, not violations', async () => {
    const p = peer();
    const inbound: MuxStream[] = [];
    p.session.on('stream', (s: MuxStream) => inbound.push(s));
    p.send(FrameType.WINDOW_UPDATE, Flag.SYN, 1, WINDOW);
    await until(() => inbound.length === 1);
    inbound[0]!.reset(WireCode.CANCEL);
    await until(() => p.frames.some((f) => (f.flags & Flag.RST) !== 0));
    p.send(FrameType.DATA, 0, 1, 5, Buffer.from('late!'));
    p.send(FrameType.WINDOW_UPDATE, 0, 1, 1000);
    p.send(FrameType.DATA, Flag.FIN, 1, 0);
    p.send(FrameType.WINDOW_UPDATE, Flag.RST, 1, WireCode.CANCEL);
    p.send(FrameType.PING, Flag.SYN, 0, 42);
    await until(() => p.frames.some((f) => f.type === FrameType.PING && f.length === 42));
    expect(p.session.state).toBe('open');
    expect(p.warns()).toHaveLength(0);
  });

  it('answers PING with the same opaque value', async () => {
    const p = peer();
    p.send(FrameType.PING, Flag.SYN, 0, 0xdead_beef);
    await until(() =>
      p.frames.some(
        (f) => f.type === FrameType.PING && f.flags === Flag.ACK && f.length === 0xdead_beef,
      ),
    );
  });

  it('advertises the initial window explicitly on ACK', async () => {
    const p = peer();
    p.session.on('stream', (s: MuxStream) => s.on('error', () => {}));
    p.send(FrameType.WINDOW_UPDATE, Flag.SYN, 1, WINDOW);
    await until(() => p.frames.some((f) => f.streamId === 1));
    const ack = p.frames.find((f) => f.streamId === 1)!;
    expect(ack.type).toBe(FrameType.WINDOW_UPDATE);
    expect(ack.flags).toBe(Flag.ACK);
    expect(ack.length).toBe(WINDOW);
  });
});

describe('accepting peers', () => {
  it('accepts DATA|SYN (0-RTT open with the payload in the SYN frame)', async () => {
    const [a, b] = createMemoryPair();
    const session = new Session({
      transport: new StreamTransport(a),
      role: 'server',
      config: QUIET,
    });
    b.on('error', () => {});
    const inbound = new Promise<MuxStream>((r) => session.once('stream', r));
    b.write(encodeFrame(FrameType.DATA, Flag.SYN | Flag.FIN, 1, 5, Buffer.from('hello')));
    const s = await within(inbound, 3000, 'stream');
    expect((await collect(s)).toString()).toBe('hello');
    session.destroy();
  });

  it('a zero-length write completes even with no send credit', async () => {
    const [a, b] = createMemoryPair();
    const session = new Session({
      transport: new StreamTransport(a),
      role: 'client',
      config: QUIET,
    });
    b.on('error', () => {});
    const s = session.open();
    s.on('error', () => {});
    s.write(Buffer.alloc(256 * 1024)); // spends the whole base credit; no ACK ever comes
    await within(
      new Promise<void>((resolve, reject) =>
        s.write(Buffer.alloc(0), (err) => (err ? reject(err) : resolve())),
      ),
      3000,
      'empty write',
    );
    session.destroy();
  });
});
