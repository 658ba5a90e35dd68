import { once } from 'node:events';
import net from 'node:net';
import {
  clientProof,
  createRootLogger,
  decodeHelloMessage,
  encodeHello,
  type Hello,
  HelloKind,
  type Logger,
  newHelloNonce,
  type Welcome,
  WS_SUBPROTOCOL,
} from '@relaymesh/shared';
import WebSocket from 'ws';
import {
  type MuxStream,
  type Tunnel,
  TunnelDialer,
  type TunnelDialerOptions,
  TunnelListener,
  type TunnelListenerOptions,
} from '../../src/index.ts';
import { collect, within } from '../mux/helpers.ts';

export const TOKEN = 'tunnel-test-token-5f1c0e2a9b7d4c3e8a6f0b1d2c3e4f5a';

export interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

/** A real pino logger whose lines land in an array. */
export function captureLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const logger = createRootLogger({
    name: 'test',
    level: 'debug',
    destination: { write: (s: string) => lines.push(JSON.parse(s) as LogLine) },
  });
  return { logger, lines };
}

/** Everything a test opens, closed in reverse order by `closeAll`. */
export class Resources {
  readonly #closers: Array<() => Promise<void> | void> = [];

  add<T>(thing: T, close: (t: T) => Promise<void> | void): T {
    this.#closers.push(() => close(thing));
    return thing;
  }

  async closeAll(): Promise<void> {
    for (const c of this.#closers.reverse()) await c();
    this.#closers.length = 0;
  }
}

export async function startListener(
  r: Resources,
  options: Partial<TunnelListenerOptions> = {},
): Promise<TunnelListener> {
  const listener = new TunnelListener({
    nodeId: 'listener-1',
    token: TOKEN,
    host: '127.0.0.1',
    port: 0,
    handshakeTimeoutMs: 2000,
    ...options,
  });
  r.add(listener, (l) => l.destroy());
  await listener.listen();
  return listener;
}

export function makeDialer(options: Partial<TunnelDialerOptions> = {}): TunnelDialer {
  return new TunnelDialer({
    nodeId: 'dialer-1',
    region: 'test-region',
    token: TOKEN,
    connectTimeoutMs: 2000,
    handshakeTimeoutMs: 2000,
    ...options,
  });
}

/** Dials and waits for the listener's side of the same tunnel. */
export async function connectPair(
  r: Resources,
  listener: TunnelListener,
  dialer: TunnelDialer,
): Promise<{ client: Tunnel; server: Tunnel }> {
  const accepted = once(listener, 'tunnel') as Promise<[Tunnel]>;
  const client = r.add(await dialer.dial(listener.url), (t) => t.destroy());
  const [server] = await within(accepted, 3000, 'listener tunnel');
  return { client, server };
}

/** Proves a tunnel carries data: echo from the other side, both directions. */
export async function expectEcho(a: Tunnel, b: Tunnel, text = 'still alive'): Promise<void> {
  for (const [opener, acceptor] of [
    [a, b],
    [b, a],
  ] as const) {
    const onStream = (s: MuxStream) => s.pipe(s);
    acceptor.session.on('stream', onStream);
    const s = opener.session.open();
    s.end(Buffer.from(text));
    const got = (await collect(s, 3000)).toString();
    acceptor.session.off('stream', onStream);
    if (got !== text) throw new Error(`echo got ${JSON.stringify(got)}`);
  }
}

/** What the peer did to a raw client WebSocket: its close code and reason. */
export function closeOf(ws: WebSocket, ms = 5000): Promise<{ code: number; reason: string }> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve({ code: 1006, reason: '' });
  return within(
    new Promise((resolve) =>
      ws.once('close', (code: number, reason: Buffer) =>
        resolve({ code, reason: reason.toString() }),
      ),
    ),
    ms,
    'ws close',
  );
}

/** A hand-driven client: a plain ws with our subprotocol, no hello logic. */
export async function rawClient(
  r: Resources,
  url: string,
  options: WebSocket.ClientOptions = {},
  protocol: string | string[] = WS_SUBPROTOCOL,
): Promise<{ ws: WebSocket; messages: Buffer[] }> {
  const ws = new WebSocket(url, protocol, { perMessageDeflate: false, ...options });
  r.add(ws, (w) => w.terminate());
  ws.on('error', () => {});
  const messages: Buffer[] = [];
  ws.on('message', (m: Buffer) => messages.push(m));
  await within(once(ws, 'open'), 3000, 'raw open');
  return { ws, messages };
}

/** Waits until `messages` has at least `n` entries. */
export async function nthMessage(messages: Buffer[], n: number, ms = 3000): Promise<Buffer> {
  const deadline = Date.now() + ms;
  while (messages.length < n) {
    if (Date.now() > deadline) throw new Error(`no message ${n} within ${ms} ms`);
    await new Promise((res) => setTimeout(res, 5));
  }
  return messages[n - 1]!;
}

/**
 * Runs the dialer side of the hello by hand on a raw client, so a test can then send
 * anything it likes on an authenticated tunnel. Returns after WELCOME.
 */
export async function rawHello(
  r: Resources,
  url: string,
  nodeId = 'raw-1',
  token = TOKEN,
): Promise<{ ws: WebSocket; messages: Buffer[] }> {
  const c = await rawClient(r, url);
  const challenge = decodeHelloMessage(await nthMessage(c.messages, 1));
  if (!('kind' in challenge) || challenge.kind !== HelloKind.CHALLENGE) throw challenge;
  const nonce = newHelloNonce();
  const mac = clientProof(token, {
    versions: challenge.versions,
    version: 1,
    serverNonce: challenge.nonce,
    clientNonce: nonce,
    serverNodeId: challenge.nodeId,
    clientNodeId: nodeId,
    region: '',
  });
  c.ws.send(
    encodeHello({ version: 1, nonce, mac, nodeId, region: '' } satisfies Omit<Hello, 'kind'>),
  );
  const welcome = decodeHelloMessage(await nthMessage(c.messages, 2)) as Welcome;
  if (welcome.kind !== HelloKind.WELCOME) throw new Error('no welcome');
  c.messages.length = 0;
  return c;
}

/** A TCP relay that records every byte in each direction. */
export async function tapProxy(
  r: Resources,
  target: { host: string; port: number },
): Promise<{ url: string; up: Buffer[]; down: Buffer[] }> {
  const up: Buffer[] = [];
  const down: Buffer[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.on('data', (d: Buffer) => up.push(Buffer.from(d)));
    upstream.on('data', (d: Buffer) => down.push(Buffer.from(d)));
    client.pipe(upstream);
    upstream.pipe(client);
  });
  r.add(server, (s) => {
    for (const sock of sockets) sock.destroy();
    s.close();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  return { url: `ws://127.0.0.1:${port}`, up, down };
}

/** Log lines with this message. */
export const linesWith = (lines: LogLine[], msg: string) => lines.filter((l) => l.msg === msg);
