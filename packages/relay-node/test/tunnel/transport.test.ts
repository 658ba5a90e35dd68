import { once } from 'node:events';
import {
  clientProof,
  decodeFrame,
  decodeHelloMessage,
  encodeFrame,
  encodeHello,
  Flag,
  type Frame,
  FrameType,
  isRelayError,
  newHelloNonce,
  type RelayError,
  WireCode,
  WS_SUBPROTOCOL,
} from '@relaymesh/shared';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import type { MuxStream, Tunnel, TunnelListener } from '../../src/index.ts';
import type { FrameTransportHandlers } from '../../src/mux/transport.ts';
import { WsTransport } from '../../src/tunnel/ws-transport.ts';
import { collect, within } from '../mux/helpers.ts';
import {
  captureLogger,
  closeOf,
  connectPair,
  expectEcho,
  type LogLine,
  linesWith,
  makeDialer,
  nthMessage,
  Resources,
  rawClient,
  rawHello,
  startListener,
  TOKEN,
} from './helpers.ts';

const r = new Resources();
afterEach(() => r.closeAll());

const nextTunnel = (listener: TunnelListener) =>
  within(once(listener, 'tunnel') as Promise<[Tunnel]>, 3000, 'tunnel').then(([t]) => t);

describe('bad input on an established tunnel closes only that tunnel', () => {
  let listener: TunnelListener;
  let logs: { lines: LogLine[] };
  let bystander: { client: Tunnel; server: Tunnel };

  beforeEach(async () => {
    logs = captureLogger();
    listener = await startListener(r, {
      logger: (logs as ReturnType<typeof captureLogger>).logger,
    });
    bystander = await connectPair(r, listener, makeDialer({ nodeId: 'bystander' }));
  });

  /** A raw authenticated peer and the listener's Tunnel for it. */
  async function rawTunnel(): Promise<{ ws: WebSocket; messages: Buffer[]; server: Tunnel }> {
    const accepted = nextTunnel(listener);
    const raw = await rawHello(r, listener.url, 'raw-1');
    const server = await accepted;
    // Accept streams but never read them, so no credit goes back.
    server.session.on('stream', (s: MuxStream) => s.on('error', () => {}));
    return { ...raw, server };
  }

  async function expectDown(server: Tunnel, code: string): Promise<RelayError> {
    const err = await within(server.closed, 3000, 'tunnel down');
    expect(isRelayError(err), String(err)).toBe(true);
    expect((err as RelayError).code).toBe(code);
    expect(listener.tunnels.has('raw-1')).toBe(false);
    await expectEcho(bystander.client, bystander.server);
    const down = linesWith(logs.lines, 'tunnel down').filter((l) => l.peerNodeId === 'raw-1');
    expect(down).toHaveLength(1);
    expect(down[0]).toMatchObject({ code });
    return err as RelayError;
  }

  /** GO_AWAY frames among what the raw peer received. */
  const goAways = (messages: Buffer[]) =>
    messages
      .map((m) => decodeFrame(m))
      .filter((f): f is Frame => !isRelayError(f) && f.type === FrameType.GO_AWAY);

  it('a text message: 1003 ERR_TUNNEL_TEXT_MESSAGE', async () => {
    const t = await rawTunnel();
    t.ws.send('hello?');
    expect(await closeOf(t.ws)).toMatchObject({
      code: 1003,
      reason: 'ERR_TUNNEL_TEXT_MESSAGE text message on a tunnel',
    });
    await expectDown(t.server, 'ERR_TUNNEL_TEXT_MESSAGE');
  });

  it('a message above maxPayload: 1009 ERR_TUNNEL_MESSAGE_TOO_LARGE', async () => {
    const t = await rawTunnel();
    t.ws.send(encodeFrame(FrameType.DATA, Flag.SYN, 1, 200_000, Buffer.alloc(200_000)));
    expect((await closeOf(t.ws)).code).toBe(1009);
    await expectDown(t.server, 'ERR_TUNNEL_MESSAGE_TOO_LARGE');
  });

  it('a malformed frame: 1002 with its ERR_PROTOCOL_* code', async () => {
    const t = await rawTunnel();
    const bad = encodeFrame(FrameType.PING, Flag.SYN, 0, 1);
    bad[0] = 9; // version
    t.ws.send(bad);
    const { code, reason } = await closeOf(t.ws);
    expect(code).toBe(1002);
    expect(reason).toBe('ERR_PROTOCOL_BAD_VERSION frame version 9, expected 1');
    await expectDown(t.server, 'ERR_PROTOCOL_BAD_VERSION');
  });

  it('a message shorter than its frame header says: ERR_PROTOCOL_TRUNCATED', async () => {
    const t = await rawTunnel();
    t.ws.send(encodeFrame(FrameType.DATA, Flag.SYN, 1, 10, Buffer.alloc(10)).subarray(0, 15));
    expect((await closeOf(t.ws)).code).toBe(1002);
    await expectDown(t.server, 'ERR_PROTOCOL_TRUNCATED');
  });

  it('a duplicate stream id: GO_AWAY(PROTOCOL_ERROR), ERR_PROTOCOL_DUPLICATE_STREAM', async () => {
    const t = await rawTunnel();
    const syn = encodeFrame(FrameType.WINDOW_UPDATE, Flag.SYN, 1, 256 * 1024);
    t.ws.send(syn);
    t.ws.send(syn);
    await closeOf(t.ws);
    expect(goAways(t.messages).map((f) => f.length)).toEqual([WireCode.PROTOCOL_ERROR]);
    await expectDown(t.server, 'ERR_PROTOCOL_DUPLICATE_STREAM');
  });

  it('DATA beyond the window: GO_AWAY(FLOW_CONTROL_ERROR), ERR_PROTOCOL_WINDOW_EXCEEDED', async () => {
    const t = await rawTunnel();
    // Nobody reads the stream on the listener, so no credit comes back: 256 KiB is all.
    t.ws.send(encodeFrame(FrameType.WINDOW_UPDATE, Flag.SYN, 1, 256 * 1024));
    const chunk = Buffer.alloc(64 * 1024, 7);
    for (let i = 0; i < 5; i++) t.ws.send(encodeFrame(FrameType.DATA, 0, 1, chunk.length, chunk));
    await closeOf(t.ws);
    expect(goAways(t.messages).map((f) => f.length)).toEqual([WireCode.FLOW_CONTROL_ERROR]);
    await expectDown(t.server, 'ERR_PROTOCOL_WINDOW_EXCEEDED');
  });

  it('the peer vanishing without a close frame: ERR_TUNNEL_CLOSED', async () => {
    const t = await rawTunnel();
    t.ws.terminate();
    await expectDown(t.server, 'ERR_TUNNEL_CLOSED');
  });
});

describe('frames that follow the hello in the same socket read', () => {
  it('a dialer may pipeline its first stream right behind its HELLO', async () => {
    const listener = await startListener(r);
    const accepted = nextTunnel(listener);
    const c = await rawClient(r, listener.url);
    const challenge = decodeHelloMessage(await nthMessage(c.messages, 1));
    if (isRelayError(challenge) || challenge.kind !== 0xc1) throw new Error('no challenge');
    const nonce = newHelloNonce();
    const t = {
      versions: challenge.versions,
      version: 1,
      serverNonce: challenge.nonce,
      clientNonce: nonce,
      serverNodeId: challenge.nodeId,
      clientNodeId: 'eager',
      region: '',
    };
    // HELLO, SYN+data+FIN in one tick: one TCP write on loopback.
    c.ws.send(
      encodeHello({ version: 1, nonce, mac: clientProof(TOKEN, t), nodeId: 'eager', region: '' }),
    );
    const data = Buffer.from('0-rtt');
    c.ws.send(encodeFrame(FrameType.DATA, Flag.SYN | Flag.FIN, 1, data.length, data));
    const server = await accepted;
    const [stream] = (await within(once(server.session, 'stream'), 3000, 'stream')) as [MuxStream];
    stream.resume();
    expect(stream.id).toBe(1);
    expect((await collect(stream, 3000)).toString()).toBe('0-rtt');
  });

  it('a listener may open a stream the moment the tunnel is up', async () => {
    const listener = await startListener(r);
    listener.on('tunnel', (t: Tunnel) => {
      const s = t.session.open();
      s.on('error', () => {}); // destroyed with the session at cleanup
      s.end(Buffer.from('welcome aboard'));
    });
    const client = r.add(await makeDialer().dial(listener.url), (t) => t.destroy());
    const [stream] = (await within(once(client.session, 'stream'), 3000, 'stream')) as [MuxStream];
    expect(stream.id % 2).toBe(0);
    expect((await collect(stream, 3000)).toString()).toBe('welcome aboard');
  });
});

/** `frame` with the scratch bytes WsTransport.send wants in front (a fresh buffer: send masks it in place). */
function withHeadroom(t: WsTransport, frame: Buffer): Buffer {
  return Buffer.concat([Buffer.alloc(t.headroom), frame]);
}

describe('WsTransport', () => {
  async function wsPair(): Promise<{ a: WebSocket; b: WebSocket }> {
    const wss = r.add(new WebSocketServer({ host: '127.0.0.1', port: 0 }), (s) => s.close());
    await once(wss, 'listening');
    const port = (wss.address() as { port: number }).port;
    const accepted = once(wss, 'connection') as Promise<[WebSocket]>;
    const a = r.add(new WebSocket(`ws://127.0.0.1:${port}`, WS_SUBPROTOCOL), (w) => w.terminate());
    await once(a, 'open');
    const [b] = await accepted;
    r.add(b, (w) => w.terminate());
    return { a, b };
  }

  function recorder() {
    const events: string[] = [];
    const frames: Frame[] = [];
    const handlers: FrameTransportHandlers = {
      frame: (f) => frames.push(f),
      error: (e) => events.push(`error ${(e as RelayError).code}`),
      drain: () => events.push('drain'),
      close: () => events.push('close'),
    };
    return { events, frames, handlers };
  }

  it('returns false above the high-water mark and drains below half of it', async () => {
    const { a, b } = await wsPair();
    const t = new WsTransport(a, { highWaterMark: 256 * 1024 });
    const rec = recorder();
    t.start(rec.handlers);
    const received: number[] = [];
    b.on('message', (m: Buffer) => received.push(m.length));
    const payload = Buffer.alloc(64 * 1024, 1);
    const frame = encodeFrame(FrameType.DATA, 0, 1, payload.length, payload);
    const results: boolean[] = [];
    for (let i = 0; i < 6; i++) results.push(t.send(withHeadroom(t, frame)));
    // Send callbacks fire only after this tick: the fourth frame crosses 256 KiB.
    expect(results).toEqual([true, true, true, false, false, false]);
    expect(t.bufferedAmount).toBe(6 * frame.length);
    await within(
      new Promise<void>((res) => {
        const check = () => (rec.events.includes('drain') ? res() : setTimeout(check, 2));
        check();
      }),
      3000,
      'drain',
    );
    expect(t.bufferedAmount).toBeLessThanOrEqual(128 * 1024);
    expect(rec.events.filter((e) => e === 'drain')).toHaveLength(1);
    t.end();
    await within(once(t, 'close'), 3000, 'close');
    expect(received).toHaveLength(6);
    expect(rec.events.at(-1)).toBe('close');
  });

  it('keeps frames that arrive before start and replays them in order', async () => {
    const { a, b } = await wsPair();
    const t = new WsTransport(a);
    for (let i = 1; i <= 3; i++) b.send(encodeFrame(FrameType.PING, Flag.SYN, 0, i));
    b.close(1000);
    await within(once(t, 'close'), 3000, 'close before start');
    const rec = recorder();
    t.start(rec.handlers);
    await new Promise((res) => setTimeout(res, 10));
    expect(rec.frames.map((f) => f.length)).toEqual([1, 2, 3]);
    expect(rec.events).toEqual(['close']);
  });

  it('stops reading when early frames pass maxEarlyBytes, resumes after start', async () => {
    const { a, b } = await wsPair();
    const t = new WsTransport(a, { maxEarlyBytes: 1000 });
    const payload = Buffer.alloc(400, 3);
    for (let i = 0; i < 10; i++) b.send(encodeFrame(FrameType.DATA, 0, 1, payload.length, payload));
    const deadline = Date.now() + 3000;
    while (!a.isPaused && Date.now() < deadline) await new Promise((res) => setTimeout(res, 2));
    expect(a.isPaused).toBe(true);
    const rec = recorder();
    t.start(rec.handlers);
    while (rec.frames.length < 10 && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 2));
    }
    expect(rec.frames).toHaveLength(10);
    expect(a.isPaused).toBe(false);
    // The Session's own pause survives a replay.
    t.pause();
    b.send(encodeFrame(FrameType.PING, Flag.SYN, 0, 99));
    await new Promise((res) => setTimeout(res, 30));
    expect(a.isPaused).toBe(true);
    t.resume();
    while (rec.frames.length < 11 && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 2));
    }
    expect(rec.frames.at(-1)?.length).toBe(99);
  });

  it('cork batches one tick of frames; a forgotten uncork still flushes', async () => {
    const { a, b } = await wsPair();
    const t = new WsTransport(a);
    t.start(recorder().handlers);
    const got: number[] = [];
    b.on('message', (m: Buffer) => got.push((decodeFrame(m) as Frame).length));
    t.cork();
    for (let i = 0; i < 50; i++)
      t.send(withHeadroom(t, encodeFrame(FrameType.PING, Flag.SYN, 0, i)));
    // no uncork on purpose
    await within(
      new Promise<void>((res) => {
        const check = () => (got.length === 50 ? res() : setTimeout(check, 2));
        check();
      }),
      3000,
      '50 frames',
    );
    expect(got).toEqual([...Array(50).keys()]);
  });

  it('destroy terminates at once; close is reported exactly once', async () => {
    const { a, b } = await wsPair();
    const t = new WsTransport(a);
    const rec = recorder();
    t.start(rec.handlers);
    const peerClosed = closeOf(b);
    t.destroy();
    t.destroy();
    t.end();
    await within(once(t, 'close'), 3000, 'close');
    expect(rec.events).toEqual(['close']);
    expect((await peerClosed).code).toBe(1006);
    expect(t.send(withHeadroom(t, encodeFrame(FrameType.PING, 0, 0, 0)))).toBe(false);
  });
});
