import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import {
  decodeHelloMessage,
  encodeChallenge,
  encodeFrame,
  encodeHello,
  encodeWelcome,
  FrameType,
  type Hello,
  HelloKind,
  isRelayError,
  newHelloNonce,
  type RelayError,
  serverProof,
  WS_SUBPROTOCOL,
} from '@relaymesh/shared';
import { FakeClock } from '@relaymesh/shared/testing';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import type { Tunnel, TunnelListener } from '../../src/index.ts';
import { within } from '../mux/helpers.ts';
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
  startListener,
  TOKEN,
  tapProxy,
} from './helpers.ts';

const r = new Resources();
afterEach(() => r.closeAll());

/** Rejects unless `p` rejects with a RelayError carrying `code`. */
async function expectCode(p: Promise<unknown>, code: string): Promise<RelayError> {
  const err = await p.then(
    () => {
      throw new Error(`expected ${code}, it succeeded`);
    },
    (e: unknown) => e,
  );
  expect(isRelayError(err), String(err)).toBe(true);
  expect((err as RelayError).code).toBe(code);
  return err as RelayError;
}

function nextRejection(listener: TunnelListener, ms = 3000): Promise<RelayError> {
  return within(
    new Promise<RelayError>((res) => listener.once('rejected', (err: RelayError) => res(err))),
    ms,
    'listener rejected',
  );
}

describe('tunnel hello: success', () => {
  it('establishes a tunnel that carries streams both ways, one log line per side', async () => {
    const server = captureLogger();
    const client = captureLogger();
    const listener = await startListener(r, { logger: server.logger, region: 'tokyo' });
    const dialer = makeDialer({ logger: client.logger });
    const pair = await connectPair(r, listener, dialer);
    expect(pair.client.peerNodeId).toBe('listener-1');
    expect(pair.server.peerNodeId).toBe('dialer-1');
    expect(pair.server.peerRegion).toBe('test-region');
    expect(pair.client.version).toBe(1);
    expect(pair.client.session.role).toBe('client');
    expect(pair.server.session.role).toBe('server');
    expect(listener.tunnels.get('dialer-1')).toBe(pair.server);
    expect(pair.server.remoteAddress).toMatch(/^127\.0\.0\.1:\d+$/);
    await expectEcho(pair.client, pair.server);
    expect(linesWith(server.lines, 'tunnel up')).toHaveLength(1);
    expect(linesWith(client.lines, 'tunnel up')).toHaveLength(1);
    expect(linesWith(server.lines, 'tunnel up')[0]).toMatchObject({
      peerNodeId: 'dialer-1',
      remote: pair.server.remoteAddress,
    });

    // Graceful close from the dialer: both ends go down cleanly.
    const serverDown = pair.server.closed;
    await within(pair.client.close(), 3000, 'client close');
    expect(await within(serverDown, 3000, 'server down')).toBeUndefined();
    expect(linesWith(server.lines, 'tunnel down')).toHaveLength(1);
    expect(listener.tunnels.size).toBe(0);
  });

  it('works attached to an existing http server', async () => {
    const http = await import('node:http');
    const server = http.createServer((_q, s) => s.end('plain http'));
    r.add(server, (s) => {
      s.closeAllConnections();
      s.close();
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { TunnelListener } = await import('../../src/index.ts');
    const listener = r.add(
      new TunnelListener({ nodeId: 'attached', token: TOKEN, server, path: '/relay' }),
      (l) => l.destroy(),
    );
    const port = (server.address() as { port: number }).port;
    const accepted = once(listener, 'tunnel') as Promise<[Tunnel]>;
    const client = r.add(await makeDialer().dial(`ws://127.0.0.1:${port}/relay`), (t) =>
      t.destroy(),
    );
    const [srv] = await accepted;
    await expectEcho(client, srv);
    await expectCode(
      makeDialer().dial(`ws://127.0.0.1:${port}/other`),
      'ERR_TUNNEL_UPGRADE_REJECTED',
    );
  });
});

describe('tunnel hello: failures close only their own connection', () => {
  let listener: TunnelListener;
  let logs: { lines: LogLine[] };
  let bystander: { client: Tunnel; server: Tunnel };

  beforeEach(async () => {
    const cap = captureLogger();
    logs = cap;
    listener = await startListener(r, { logger: cap.logger });
    bystander = await connectPair(r, listener, makeDialer({ nodeId: 'bystander' }));
  });

  /** The other tunnel on the same listener still works, and exactly one warn line was logged. */
  async function expectOnlyThatOneFailed(code: string): Promise<void> {
    await expectEcho(bystander.client, bystander.server);
    expect(listener.tunnels.get('bystander')).toBe(bystander.server);
    const rejected = linesWith(logs.lines, 'tunnel rejected');
    expect(rejected, JSON.stringify(rejected)).toHaveLength(1);
    expect(rejected[0]).toMatchObject({ level: 40, code });
  }

  it('garbage as the first message: 1002 ERR_PROTOCOL_BAD_HELLO', async () => {
    const c = await rawClient(r, listener.url);
    await nthMessage(c.messages, 1); // the CHALLENGE
    const rejected = nextRejection(listener);
    c.ws.send(Buffer.from('GET / HTTP/1.1\r\n\r\n'));
    const { code, reason } = await closeOf(c.ws);
    expect(code).toBe(1002);
    expect(reason).toMatch(/^ERR_PROTOCOL_BAD_HELLO /);
    expect((await rejected).code).toBe('ERR_PROTOCOL_BAD_HELLO');
    await expectOnlyThatOneFailed('ERR_PROTOCOL_BAD_HELLO');
  });

  it('a mux frame before the hello: 1002 ERR_PROTOCOL_BAD_HELLO', async () => {
    const c = await rawClient(r, listener.url);
    await nthMessage(c.messages, 1);
    c.ws.send(encodeFrame(FrameType.PING, 0x1, 0, 7));
    const { code, reason } = await closeOf(c.ws);
    expect(code).toBe(1002);
    expect(reason).toMatch(/^ERR_PROTOCOL_BAD_HELLO unknown hello kind 0x1$/);
    await expectOnlyThatOneFailed('ERR_PROTOCOL_BAD_HELLO');
  });

  it('a text message as the hello: 1003 ERR_TUNNEL_TEXT_MESSAGE', async () => {
    const c = await rawClient(r, listener.url);
    await nthMessage(c.messages, 1);
    c.ws.send('{"hello":"world"}');
    const { code, reason } = await closeOf(c.ws);
    expect(code).toBe(1003);
    expect(reason).toMatch(/^ERR_TUNNEL_TEXT_MESSAGE /);
    await expectOnlyThatOneFailed('ERR_TUNNEL_TEXT_MESSAGE');
  });

  it('an oversize message during the hello: 1009 ERR_TUNNEL_MESSAGE_TOO_LARGE', async () => {
    const c = await rawClient(r, listener.url);
    await nthMessage(c.messages, 1);
    c.ws.send(Buffer.alloc(128 * 1024 + 1));
    const { code } = await closeOf(c.ws);
    expect(code).toBe(1009);
    await expectOnlyThatOneFailed('ERR_TUNNEL_MESSAGE_TOO_LARGE');
  });

  it('an unsupported version in the HELLO: 1002 ERR_PROTOCOL_BAD_VERSION', async () => {
    const c = await rawClient(r, listener.url);
    const challenge = decodeHelloMessage(await nthMessage(c.messages, 1));
    expect(challenge).toMatchObject({ kind: HelloKind.CHALLENGE, versions: { min: 1, max: 1 } });
    const hello: Omit<Hello, 'kind'> = {
      version: 7,
      nonce: newHelloNonce(),
      mac: Buffer.alloc(32),
      nodeId: 'from-the-future',
      region: '',
    };
    c.ws.send(encodeHello(hello));
    const { code, reason } = await closeOf(c.ws);
    expect(code).toBe(1002);
    expect(reason).toBe('ERR_PROTOCOL_BAD_VERSION peer chose protocol version 7, we speak 1-1');
    await expectOnlyThatOneFailed('ERR_PROTOCOL_BAD_VERSION');
  });

  it('a dialer that speaks only newer versions refuses the challenge itself', async () => {
    const err = await expectCode(
      makeDialer({ versions: { min: 2, max: 3 } }).dial(listener.url),
      'ERR_PROTOCOL_BAD_VERSION',
    );
    expect(err.message).toBe('no common protocol version: we speak 2-3, peer speaks 1-1');
    // The listener learns why from the close reason.
    await expectOnlyThatOneFailed('ERR_PROTOCOL_BAD_VERSION');
  });

  it('a client that connects and says nothing: ERR_AUTH_TIMEOUT (injected clock)', async () => {
    const clock = new FakeClock();
    const slow = await startListener(r, { clock, handshakeTimeoutMs: 10_000 });
    const c = await rawClient(r, slow.url);
    await nthMessage(c.messages, 1); // the challenge is out: the deadline is armed
    const rejected = nextRejection(slow);
    clock.advance(9_999);
    expect(slow.pendingHandshakes).toBe(1);
    clock.advance(1);
    const { code, reason } = await closeOf(c.ws);
    expect(code).toBe(1008);
    expect(reason).toBe('ERR_AUTH_TIMEOUT hello not completed within 10000 ms');
    expect((await rejected).code).toBe('ERR_AUTH_TIMEOUT');
    expect(slow.pendingHandshakes).toBe(0);
    await expectEcho(bystander.client, bystander.server);
  });

  it('random first messages never hurt the listener: each gets a coded close', async () => {
    const { default: fc } = await import('fast-check');
    const codes = new Set<number>();
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.uint8Array({ maxLength: 200 }),
          // biased towards almost-valid hellos
          fc.uint8Array({ minLength: 1, maxLength: 120 }).map((b) => {
            b[0] = 0xc1 + (b[0]! % 3);
            return b;
          }),
        ),
        async (bytes) => {
          const c = await rawClient(r, listener.url);
          await nthMessage(c.messages, 1);
          c.ws.send(Buffer.from(bytes));
          const { code, reason } = await closeOf(c.ws);
          codes.add(code);
          expect([1002, 1003, 1008, 1009]).toContain(code);
          expect(reason).toMatch(/^ERR_[A-Z_]+ /);
        },
      ),
      { numRuns: 40 },
    );
    expect(codes.has(1002)).toBe(true);
    expect(listener.pendingHandshakes).toBe(0);
    await expectEcho(bystander.client, bystander.server);
  });

  it('without the relaymux.1 subprotocol the upgrade is refused with 400', async () => {
    const ws = r.add(new WebSocket(listener.url, 'chat'), (w) => w.terminate());
    ws.on('error', () => {});
    const [, res] = (await within(once(ws, 'unexpected-response'), 3000, '400')) as [
      unknown,
      IncomingMessage,
    ];
    res.resume();
    expect(res.statusCode).toBe(400);
    expect(res.headers['x-relaymesh-error']).toBe('ERR_PROTOCOL_BAD_VERSION');
    await expectOnlyThatOneFailed('ERR_PROTOCOL_BAD_VERSION');
  });

  it('too many pending hellos: 503 ERR_TUNNEL_HANDSHAKE_LIMIT, then room again', async () => {
    const small = await startListener(r, { maxPendingHandshakes: 2 });
    const quiet = [await rawClient(r, small.url), await rawClient(r, small.url)];
    await expectCode(makeDialer().dial(small.url), 'ERR_TUNNEL_HANDSHAKE_LIMIT');
    for (const q of quiet) q.ws.terminate();
    const deadline = Date.now() + 3000;
    while (small.pendingHandshakes > 0 && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 10));
    }
    const t = r.add(await makeDialer().dial(small.url), (x) => x.destroy());
    expect(t.peerNodeId).toBe('listener-1');
  });

  it('a dialer with our own node id: ERR_TUNNEL_SELF', async () => {
    await expectCode(makeDialer({ nodeId: 'listener-1' }).dial(listener.url), 'ERR_TUNNEL_SELF');
    await expectOnlyThatOneFailed('ERR_TUNNEL_SELF');
  });

  it('someone else at the address: ERR_TUNNEL_PEER_MISMATCH before any proof is sent', async () => {
    const rejected = nextRejection(listener);
    await expectCode(
      makeDialer().dial(listener.url, { expectedPeerNodeId: 'listener-2' }),
      'ERR_TUNNEL_PEER_MISMATCH',
    );
    expect((await rejected).code).toBe('ERR_TUNNEL_PEER_MISMATCH');
    await expectOnlyThatOneFailed('ERR_TUNNEL_PEER_MISMATCH');
  });

  it('a reconnecting peer replaces its old tunnel (4001 ERR_TUNNEL_REPLACED)', async () => {
    const first = await connectPair(r, listener, makeDialer({ nodeId: 'flappy' }));
    const firstDown = first.client.closed;
    const second = await connectPair(r, listener, makeDialer({ nodeId: 'flappy' }));
    const err = await within(firstDown, 3000, 'first down');
    expect((err as RelayError).code).toBe('ERR_TUNNEL_REPLACED');
    expect(((err as RelayError).details as { closeCode: number }).closeCode).toBe(4001);
    expect(listener.tunnels.get('flappy')).toBe(second.server);
    await expectEcho(second.client, second.server);
    await expectEcho(bystander.client, bystander.server);
  });
});

describe('tunnel hello: the token', () => {
  it('a wrong token is refused by the listener (ERR_AUTH_FAILED) and never crosses the wire', async () => {
    const cap = captureLogger();
    const listener = await startListener(r, { logger: cap.logger });
    const bystander = await connectPair(r, listener, makeDialer({ nodeId: 'bystander' }));
    const tap = await tapProxy(r, { host: '127.0.0.1', port: listener.address!.port });
    const wrong = 'not-the-cluster-token-0123456789abcdef';

    // A good tunnel through the tap first: the proofs are on the wire, the token is not.
    const good = r.add(await makeDialer({ nodeId: 'tapped' }).dial(tap.url), (t) => t.destroy());
    expect(good.peerNodeId).toBe('listener-1');

    const rejected = nextRejection(listener);
    const err = await expectCode(makeDialer({ token: wrong }).dial(tap.url), 'ERR_AUTH_FAILED');
    expect(err.message).toMatch(/^peer closed the tunnel: ERR_AUTH_FAILED/);
    expect((err.details as { closeCode: number }).closeCode).toBe(1008);
    expect((await rejected).code).toBe('ERR_AUTH_FAILED');

    const wire = Buffer.concat([...tap.up, ...tap.down]);
    expect(wire.length).toBeGreaterThan(200);
    for (const secret of [TOKEN, wrong]) {
      for (const form of [
        Buffer.from(secret),
        Buffer.from(Buffer.from(secret).toString('base64')),
        Buffer.from(Buffer.from(secret).toString('hex')),
        Buffer.from(secret.slice(0, 16)),
      ]) {
        expect(wire.indexOf(form), `token form ${form} on the wire`).toBe(-1);
      }
    }
    const warn = linesWith(cap.lines, 'tunnel rejected');
    expect(warn).toHaveLength(1);
    expect(warn[0]).toMatchObject({ code: 'ERR_AUTH_FAILED', peerNodeId: 'dialer-1' });
    expect(JSON.stringify(cap.lines)).not.toContain(TOKEN);
    await expectEcho(bystander.client, bystander.server);
  });

  it('a listener that cannot prove the token is refused by the dialer (ERR_AUTH_FAILED)', async () => {
    // A fake listener that knows the protocol but not the token.
    const wss = r.add(
      new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: () => WS_SUBPROTOCOL }),
      (s) => s.close(),
    );
    await once(wss, 'listening');
    const closed = new Promise<{ code: number; reason: string }>((resolve) => {
      wss.on('connection', (ws) => {
        r.add(ws, (w) => w.terminate());
        const nonce = newHelloNonce();
        ws.send(encodeChallenge({ versions: { min: 1, max: 1 }, nonce, nodeId: 'impostor' }));
        ws.once('message', (m: Buffer) => {
          const hello = decodeHelloMessage(m) as Hello;
          // Everything right except the token it has to guess.
          const mac = serverProof('a guess', {
            versions: { min: 1, max: 1 },
            version: 1,
            serverNonce: nonce,
            clientNonce: hello.nonce,
            serverNodeId: 'impostor',
            clientNodeId: hello.nodeId,
            region: hello.region,
          });
          ws.send(encodeWelcome({ version: 1, mac }));
        });
        ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
      });
    });
    const port = (wss.address() as { port: number }).port;
    await expectCode(makeDialer().dial(`ws://127.0.0.1:${port}`), 'ERR_AUTH_FAILED');
    const { code, reason } = await within(closed, 3000, 'impostor close');
    expect(code).toBe(1008);
    expect(reason).toBe('ERR_AUTH_FAILED welcome proof from impostor did not verify');
  });
});

describe('tunnel hello: the dialer side', () => {
  /** A WebSocket server that speaks relaymux.1 but runs `onConnection` instead of a hello. */
  async function fakeListener(onConnection: (ws: WebSocket) => void): Promise<string> {
    const wss = r.add(
      new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: () => WS_SUBPROTOCOL }),
      (s) => s.close(),
    );
    await once(wss, 'listening');
    wss.on('connection', (ws) => {
      r.add(ws, (w) => w.terminate());
      ws.on('error', () => {});
      onConnection(ws);
    });
    return `ws://127.0.0.1:${(wss.address() as { port: number }).port}`;
  }

  it('a listener that never sends its CHALLENGE: ERR_AUTH_TIMEOUT (injected clock)', async () => {
    const closes: number[] = [];
    const url = await fakeListener((ws) => ws.on('close', (code) => closes.push(code)));
    const clock = new FakeClock();
    const dial = makeDialer({ clock, handshakeTimeoutMs: 5000 }).dial(url);
    // Wait until the upgrade is done and the hello deadline is armed.
    const deadline = Date.now() + 3000;
    while (clock.pending === 0 && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 5));
    }
    clock.advance(5000);
    await expectCode(dial, 'ERR_AUTH_TIMEOUT');
    await within(
      new Promise<void>((res) => {
        const check = () => (closes.length > 0 ? res() : setTimeout(check, 5));
        check();
      }),
      3000,
      'listener saw the close',
    );
    expect(closes).toEqual([1008]);
  });

  it('a listener that sends garbage first: the dialer closes with 1002 ERR_PROTOCOL_BAD_HELLO', async () => {
    let reason = '';
    const url = await fakeListener((ws) => {
      ws.on('close', (_code, why: Buffer) => {
        reason = why.toString();
      });
      ws.send(Buffer.from('220 smtp.example.com ESMTP'));
    });
    await expectCode(makeDialer().dial(url), 'ERR_PROTOCOL_BAD_HELLO');
    const deadline = Date.now() + 3000;
    while (reason === '' && Date.now() < deadline) await new Promise((res) => setTimeout(res, 5));
    expect(reason).toMatch(/^ERR_PROTOCOL_BAD_HELLO unknown hello kind 0x32/);
  });
});
