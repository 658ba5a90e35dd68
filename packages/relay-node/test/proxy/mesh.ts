import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { type Dialer, DirectDialer, type Logger } from '@relaymesh/shared';
import { createMemoryPair } from '../../src/mux/memory-pair.ts';
import { Session } from '../../src/mux/session.ts';
import { StreamTransport } from '../../src/mux/stream-transport.ts';
import { DataPlane, type DataPlaneOptions } from '../../src/proxy/data-plane.ts';
import type { EntryConnector } from '../../src/proxy/entry-connector.ts';
import type { ExitHandler } from '../../src/proxy/exit/exit-handler.ts';
import type { EntryServer } from '../../src/proxy/http/entry-server.ts';
import type { StreamServer } from '../../src/proxy/relay/stream-server.ts';
import type { HopStream, StreamOpener } from '../../src/proxy/types.ts';
import { type OriginConfig, OriginTable } from '../../src/routing/origin-catalog.ts';
import { type RouteEntry, RouteTable } from '../../src/routing/route-table.ts';

/**
 * Saturates this process's event loop (an interval that spins 20 ms of every 21:
 * utilisation ~0.95) for 300 ms before it resolves; `onCleanup` gets the stop function
 * too, so the test's cleanup stops it if the test does not.
 */
export async function saturatedLoop(onCleanup: (stop: () => void) => void): Promise<() => void> {
  const timer = setInterval(() => {
    const end = performance.now() + 20;
    while (performance.now() < end);
  }, 1);
  const stop = () => clearInterval(timer);
  onCleanup(stop);
  await new Promise((r) => setTimeout(r, 300));
  return stop;
}

/** Node `en`'s tables with no origins and no peers (every open throws). */
export function peerlessTables(): {
  nodeId: string;
  catalog: OriginTable;
  routes: RouteTable;
  opener: { open(peer: string): never };
} {
  return {
    nodeId: 'en',
    catalog: new OriginTable([]),
    routes: new RouteTable({ nodeId: 'en' }),
    opener: {
      open() {
        throw new Error('no peers');
      },
    },
  };
}

/**
 * A node that is only an entry, on 127.0.0.1:0, with no origins and no peers (every open
 * throws): for listener and configuration checks. Not started.
 */
export function peerlessEntryPlane(
  entry: NonNullable<DataPlaneOptions['entry']>,
  extra: Partial<DataPlaneOptions> = {},
): DataPlane {
  return new DataPlane({
    ...peerlessTables(),
    dialer: new DirectDialer(),
    httpListen: { host: '127.0.0.1', port: 0 },
    entry,
    ...extra,
  });
}

/** One node of a test mesh: every data plane role, sessions to its neighbours. */
export interface MeshNode {
  id: string;
  sessions: Map<string, Session>;
  opener: StreamOpener;
  routes: RouteTable;
  plane: DataPlane;
  exit: ExitHandler;
  server: StreamServer;
  connector: EntryConnector;
  entry: EntryServer;
  /** Base URL of the node's HTTP entry. */
  url: string;
  port: number;
}

export interface MeshOptions {
  nodes: string[];
  /** Node pairs joined by a mux session ([client, server]). */
  links: Array<[string, string]>;
  origins: OriginConfig[];
  /** Routes (each node keeps those `from` itself). */
  routes?: RouteEntry[];
  /** Sessions over TCP sockets on 127.0.0.1 instead of in-memory pipes. @default 'memory' */
  transport?: 'memory' | 'tcp';
  debugHeaders?: boolean;
  dialer?: Dialer;
  /** Per node: the dialer its exit reaches upstreams with (else `dialer`). */
  dialers?: Record<string, Dialer>;
  exit?: DataPlaneOptions['exit'];
  responseHeadTimeoutMs?: number;
  /** Every node's data plane logs here. @default silent */
  logger?: Logger;
}

export interface Mesh {
  nodes: Map<string, MeshNode>;
  node(id: string): MeshNode;
  catalog: OriginTable;
  close(): Promise<void>;
}

/** A route record with a path and optional alternates. */
export function route(origin: string, path: string[], ...alternates: string[][]): RouteEntry {
  return {
    from: path[0] as string,
    origin,
    path,
    rttMs: 10,
    alternates: alternates.map((p) => ({ path: p, rttMs: 20 })),
  };
}

async function socketPair(): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer({ allowHalfOpen: true });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const client = net.connect((server.address() as AddressInfo).port, '127.0.0.1');
  await new Promise((r) => client.once('connect', r));
  const s = await accepted;
  server.close();
  return [client, s];
}

function makeNode(id: string, o: MeshOptions, catalog: OriginTable): MeshNode {
  const sessions = new Map<string, Session>();
  const opener: StreamOpener = {
    open(peer) {
      const s = sessions.get(peer);
      if (!s) throw new Error(`no session to ${peer}`);
      return s.open() as HopStream;
    },
  };
  const routes = new RouteTable({ nodeId: id });
  routes.update(o.routes ?? []);
  const plane = new DataPlane({
    nodeId: id,
    catalog,
    routes,
    opener,
    dialer: o.dialers?.[id] ?? o.dialer ?? new DirectDialer(),
    httpListen: { host: '127.0.0.1', port: 0 },
    debugHeaders: o.debugHeaders ?? true,
    ...(o.exit ? { exit: o.exit } : {}),
    ...(o.responseHeadTimeoutMs ? { responseHeadTimeoutMs: o.responseHeadTimeoutMs } : {}),
    ...(o.logger ? { logger: o.logger.child({ nodeId: id }) } : {}),
  });
  return {
    id,
    sessions,
    opener,
    routes,
    plane,
    exit: plane.exit,
    server: plane.streams,
    connector: plane.connector,
    entry: plane.entry as EntryServer,
    url: '',
    port: 0,
  };
}

/** Builds nodes, joins them with real mux sessions, starts every entry on port 0. */
export async function buildMesh(o: MeshOptions): Promise<Mesh> {
  const catalog = new OriginTable(o.origins);
  const nodes = new Map<string, MeshNode>();
  for (const id of o.nodes) nodes.set(id, makeNode(id, o, catalog));
  const node = (id: string) => {
    const n = nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  };
  for (const [a, b] of o.links) {
    const [x, y] = o.transport === 'tcp' ? await socketPair() : createMemoryPair();
    const sa = new Session({ transport: new StreamTransport(x), role: 'client' });
    const sb = new Session({ transport: new StreamTransport(y), role: 'server' });
    sa.on('error', () => {});
    sb.on('error', () => {});
    sa.on('stream', (s) => node(a).plane.handleStream(s as HopStream));
    sb.on('stream', (s) => node(b).plane.handleStream(s as HopStream));
    node(a).sessions.set(b, sa);
    node(b).sessions.set(a, sb);
  }
  for (const n of nodes.values()) {
    const addr = (await n.plane.start()).http as AddressInfo;
    n.port = addr.port;
    n.url = `http://127.0.0.1:${addr.port}`;
  }
  return {
    nodes,
    node,
    catalog,
    async close() {
      for (const n of nodes.values()) {
        await n.plane.destroy();
        for (const s of n.sessions.values()) s.destroy();
      }
    },
  };
}

/** A test origin: an http server on 127.0.0.1:0 with a handler; counts connections. */
export interface TestOrigin {
  server: http.Server;
  port: number;
  url: string;
  connections: number;
  requests: number;
  close(): Promise<void>;
}

export async function startOrigin(handler: http.RequestListener): Promise<TestOrigin> {
  const server = http.createServer((req, res) => {
    origin.requests += 1;
    handler(req, res);
  });
  server.keepAliveTimeout = 10_000;
  const origin: TestOrigin = {
    server,
    port: 0,
    url: '',
    connections: 0,
    requests: 0,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
  server.on('connection', () => {
    origin.connections += 1;
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  origin.port = (server.address() as AddressInfo).port;
  origin.url = `http://127.0.0.1:${origin.port}`;
  return origin;
}

/** A port that refuses connections (bound then closed). */
export async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

export function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/**
 * Sends raw bytes on a fresh connection and returns everything the server sends until it
 * closes or `idleMs` passes without bytes (keep-alive servers do not close). Content-Length
 * bodies end the read early.
 */
export function rawExchange(port: number, text: string, idleMs = 300): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    const finish = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(Buffer.concat(chunks).toString('latin1'));
    };
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(finish, idleMs);
    };
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      const all = Buffer.concat(chunks).toString('latin1');
      const m = /content-length: (\d+)/i.exec(all);
      const sep = all.indexOf('\r\n\r\n');
      if (m && sep >= 0 && all.length - sep - 4 >= Number(m[1])) return finish();
      arm();
    });
    socket.once('end', finish);
    socket.once('error', reject);
    socket.write(text);
    timer = setTimeout(finish, 5_000);
  });
}

/** Whether iproute2's `ss` is installed (tests that read socket states skip without it). */
export function hasSs(): boolean {
  try {
    execFileSync('ss', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** `ss -tanH` lines of the sockets whose local port is `port`, any state (`-l`: listeners only). */
export function socketsOnPort(port: number, listening = false): string[] {
  const flags = listening ? '-ltnH' : '-tanH';
  const out = execFileSync('ss', [flags, `sport = :${port}`], { encoding: 'utf8' });
  return out.split('\n').filter((l) => l.trim() !== '');
}

/** The entry's sockets to its clients, in any state (ss lines), listener excluded. */
export function entrySideSockets(port: number): string[] {
  return socketsOnPort(port).filter((l) => !l.startsWith('LISTEN'));
}

/** A client request's outcome at the entry (debug headers on). */
export interface Outcome {
  status: number;
  /** `x-relaymesh-path`: the path that served it. */
  path: string | undefined;
  /** `x-relaymesh-error`: the error code of an error answer. */
  error: string | undefined;
  body: string;
}

/** One request to the entry `en` of `m` for Host files.example (an own connection). */
export function sendToEntry(
  m: Mesh,
  method: string,
  path: string,
  opts: { body?: Buffer; key?: string } = {},
): Promise<Outcome> {
  return new Promise<Outcome>((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = { host: 'files.example' };
    if (opts.key) headers['idempotency-key'] = opts.key;
    const req = http.request(
      { port: m.node('en').port, host: '127.0.0.1', method, path, headers, agent: false },
      (res) => {
        let body = '';
        res.on('data', (d) => {
          body += d;
        });
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            path: res.headers['x-relaymesh-path'] as string | undefined,
            error: res.headers['x-relaymesh-error'] as string | undefined,
            body,
          }),
        );
      },
    );
    req.setTimeout(10_000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** Reads from `s` until the text received contains `marker`; resolves with all of it. */
export function readUntil(s: net.Socket, marker: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const onData = (d: Buffer) => {
      got += d.toString();
      if (got.includes(marker)) {
        s.off('data', onData);
        resolve(got);
      }
    };
    s.on('data', onData);
    s.once('error', reject);
    s.once('close', () => reject(new Error(`closed before "${marker}": got "${got}"`)));
  });
}

/** A TCP echo server on 127.0.0.1 that ends on the client's FIN. */
export async function startEcho(): Promise<{ server: net.Server; port: number }> {
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('data', (c) => s.write(c));
    s.on('end', () => s.end());
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port };
}

/**
 * A test body of `total` bytes: 64 KiB blocks of a pattern drawn from `seed`, each starting
 * with its index, so a byte out of place changes the sha256. `bytes(from, to)` yields
 * [from, to); `sha` is the whole body's sha256.
 */
export function patternBody(
  seed: string,
  total: number,
): {
  bytes: (from: number, to: number) => Generator<Buffer>;
  sha: string;
} {
  const BLOCK = 64 * 1024;
  const pattern = createHash('sha512')
    .update(seed)
    .digest()
    .toString('hex')
    .repeat(BLOCK / 128);
  function* bytes(from: number, to: number): Generator<Buffer> {
    for (let k = Math.floor(from / BLOCK); k * BLOCK < to; k++) {
      const block = Buffer.from(pattern, 'latin1');
      block.writeUInt32BE(k, 0);
      const start = Math.max(from - k * BLOCK, 0);
      yield block.subarray(start, Math.min(BLOCK, to - k * BLOCK));
    }
  }
  const h = createHash('sha256');
  for (const b of bytes(0, total)) h.update(b);
  return { bytes, sha: h.digest('hex') };
}

/**
 * Resumes `client` (a raw HTTP/1.1 connection with one request sent) and hands each body
 * chunk to `onBody` until `size` body bytes came; resolves with the response head.
 */
export function readRawResponse(
  client: net.Socket,
  size: number,
  onBody: (d: Buffer) => void,
): Promise<string> {
  return new Promise((resolve, reject) => {
    let head: Buffer | undefined = Buffer.alloc(0);
    let headText = '';
    let n = 0;
    client.on('data', (d: Buffer) => {
      if (head !== undefined) {
        const all = Buffer.concat([head, d]);
        const end = all.indexOf('\r\n\r\n');
        if (end < 0) {
          head = all;
          return;
        }
        headText = all.subarray(0, end).toString('latin1');
        head = undefined;
        d = all.subarray(end + 4);
      }
      n += d.length;
      onBody(d);
      if (n >= size) resolve(headText);
    });
    client.once('close', () => reject(new Error(`closed after ${n} body bytes`)));
    client.resume();
  });
}

/** {@link readRawResponse} of `size` body bytes: the head, the byte count and the sha256. */
export async function readRawBody(
  client: net.Socket,
  size: number,
): Promise<{ head: string; bytes: number; sha: string }> {
  const h = createHash('sha256');
  let bytes = 0;
  const head = await readRawResponse(client, size, (d) => {
    bytes += d.length;
    h.update(d);
  });
  return { head, bytes, sha: h.digest('hex') };
}

/** Writes `chunks` to `res` as fast as it drains, then ends it; write errors are ignored. */
export function writeAll(res: http.ServerResponse, chunks: Iterator<Buffer>): void {
  const more = () => {
    for (let c = chunks.next(); !c.done; c = chunks.next()) {
      if (!res.write(c.value)) return void res.once('drain', more);
    }
    res.end();
  };
  res.on('error', () => {});
  more();
}
