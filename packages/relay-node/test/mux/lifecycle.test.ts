import { Writable } from 'node:stream';
import {
  createRootLogger,
  encodeFrame,
  Flag,
  type Frame,
  FrameDecoder,
  FrameType,
  isRelayError,
  RelayError,
  WireCode,
} from '@relaymesh/shared';
import { FakeClock } from '@relaymesh/shared/testing';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createMemoryPair,
  type MuxStream,
  Session,
  type SessionOptions,
  StreamTransport,
} from '../../src/index.ts';
import { collect, nextStream, streamError, until, within } from './helpers.ts';

const sessions: Session[] = [];
afterEach(() => {
  for (const s of sessions.splice(0)) s.destroy();
});

function pair(extra: Partial<SessionOptions> = {}) {
  const [a, b] = createMemoryPair();
  const client = new Session({ transport: new StreamTransport(a), role: 'client', ...extra });
  const server = new Session({ transport: new StreamTransport(b), role: 'server', ...extra });
  sessions.push(client, server);
  return { client, server };
}

function captureLogs() {
  const lines: Array<{ level: number; msg: string; refused?: number }> = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line));
      cb();
    },
  });
  return { lines, logger: createRootLogger({ name: 'test', level: 'info', destination }) };
}

describe('session lifecycle', () => {
  it('close() drains open streams, then closes both sides cleanly', async () => {
    const { client, server } = pair();
    const inbound = nextStream(server);
    const s = client.open();
    s.write('still talking');
    const ss = await inbound;
    let closeEvents = 0;
    server.on('close', () => closeEvents++);
    const closing = server.close();
    expect(server.state).toBe('draining');
    expect(server.close()).toBe(closing);
    await new Promise((r) => setTimeout(r, 20));
    expect(server.state).toBe('draining');
    const fromClient = collect(ss);
    ss.end('bye');
    s.end('!');
    expect((await fromClient).toString()).toBe('still talking!');
    expect((await collect(s)).toString()).toBe('bye');
    await within(closing, 3000, 'server close');
    await within(client.closed, 3000, 'client closed');
    expect(server.state).toBe('closed');
    expect(client.state).toBe('closed');
    expect(closeEvents).toBe(1);
  });

  it('close() is bounded: an aborted signal destroys what is left', async () => {
    const { client, server } = pair();
    server.on('stream', (st: MuxStream) => st.on('error', () => {}));
    const s = client.open();
    const err = streamError(s);
    const ac = new AbortController();
    const closing = client.close({ signal: ac.signal });
    ac.abort();
    await within(closing, 3000, 'close');
    expect(client.state).toBe('destroyed');
    expect(isRelayError(await err, 'ERR_MUX_SESSION_CLOSED')).toBe(true);
  });

  it('close() with an already aborted signal destroys at once', async () => {
    const { client, server } = pair();
    server.on('stream', (st: MuxStream) => st.on('error', () => {}));
    const err = streamError(client.open());
    await within(client.close({ signal: AbortSignal.abort() }), 3000, 'close');
    expect(client.state).toBe('destroyed');
    expect(isRelayError(await err, 'ERR_MUX_SESSION_CLOSED')).toBe(true);
  });

  it('close() gives up after closeTimeoutMs', async () => {
    const clock = new FakeClock();
    const { client, server } = pair({ clock, config: { closeTimeoutMs: 1000 } });
    server.on('stream', (st: MuxStream) => st.on('error', () => {}));
    client.open().on('error', () => {});
    const closing = client.close();
    clock.advance(999);
    expect(client.state).toBe('draining');
    clock.advance(1);
    expect(client.state).toBe('destroyed');
    await within(closing, 3000, 'close');
  });

  it('destroy(err) fails streams with err, emits error once, is idempotent', async () => {
    const { client, server } = pair();
    server.on('stream', (st: MuxStream) => st.on('error', () => {}));
    const s = client.open();
    const streamErr = streamError(s);
    const errors: Error[] = [];
    let closes = 0;
    client.on('error', (e: Error) => errors.push(e));
    client.on('close', () => closes++);
    const boom = new RelayError('ERR_INTERNAL', 'boom');
    client.destroy(boom);
    client.destroy(new RelayError('ERR_INTERNAL', 'again'));
    await client.close();
    expect(await streamErr).toBe(boom);
    expect(errors).toEqual([boom]);
    expect(closes).toBe(1);
    expect(client.state).toBe('destroyed');
    await within(server.closed, 3000, 'peer closed');
    expect(server.state).toBe('destroyed');
  });

  it('without an error listener, a violation does not throw', async () => {
    const [a, b] = createMemoryPair();
    const session = new Session({ transport: new StreamTransport(a), role: 'server' });
    sessions.push(session);
    b.on('error', () => {});
    b.write(encodeFrame(FrameType.WINDOW_UPDATE, Flag.SYN, 2, 256 * 1024));
    await within(session.closed, 3000, 'closed');
    expect(session.state).toBe('destroyed');
  });

  it('answers a SYN that crosses our GO_AWAY with RST GOING_AWAY', async () => {
    const [a, b] = createMemoryPair();
    const session = new Session({ transport: new StreamTransport(a), role: 'server' });
    sessions.push(session);
    const frames: Frame[] = [];
    const decoder = new FrameDecoder();
    b.on('data', (c: Buffer) => {
      for (const f of decoder.push(c)) if (!(f instanceof Error)) frames.push(f);
    });
    session.goAway();
    b.write(encodeFrame(FrameType.WINDOW_UPDATE, Flag.SYN, 1, 256 * 1024));
    await until(() => frames.some((f) => f.streamId === 1));
    const rst = frames.find((f) => f.streamId === 1)!;
    expect(rst.flags).toBe(Flag.RST);
    expect(rst.length).toBe(WireCode.GOING_AWAY);
    expect(frames.some((f) => f.type === FrameType.GO_AWAY && f.length === 0)).toBe(true);
  });

  it('logs one warn line per burst of refusals', async () => {
    const { lines, logger } = captureLogs();
    const { client, server } = pair({ logger, config: { acceptBacklog: 2 } });
    const opened = Array.from({ length: 12 }, () => client.open());
    const refused = opened.slice(2).map((s) => streamError(s));
    for (const e of await Promise.all(refused)) {
      expect(isRelayError(e, 'ERR_MUX_BACKLOG_FULL')).toBe(true);
    }
    const warns = lines.filter((l) => l.level === 40 && l.msg === 'refusing inbound streams');
    // Both sessions share the logger; only the server refused.
    expect(warns).toHaveLength(1);
    server.on('stream', (st: MuxStream) => st.on('error', () => {}));
    client.open().on('error', () => {});
    await until(() => lines.some((l) => l.msg === 'accepting inbound streams again'));
    expect(lines.find((l) => l.msg === 'accepting inbound streams again')!.refused).toBe(10);
    for (const s of opened.slice(0, 2)) s.on('error', () => {});
  });
});
