import net from 'node:net';
import { DirectDialer } from '@relaymesh/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DataPlane,
  type HopStream,
  OriginTable,
  RouteTable,
  type Tunnel,
  TunnelDialer,
  TunnelListener,
} from '../../src/index.ts';
import { startOrigin, type TestOrigin } from './mesh.ts';

// Issue 5: the small-request path as wrk drives it. An entry and an exit joined by a real
// WebSocket tunnel (WsTransport: the corked, batched send path), a raw keep-alive client
// connection sending requests back to back, and pipelined batches in one write. Every
// request must be answered, in order, with its own body.

const TOKEN = 'keepalive-tunnel-test-token-0123456789abcdef';

let origin: TestOrigin;
let entry: DataPlane;
let exit: DataPlane;
let listener: TunnelListener;
let tunnel: Tunnel;
let entryPort: number;

beforeAll(async () => {
  origin = await startOrigin((req, res) => {
    const body = `ok ${req.url}`;
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
    res.end(body);
  });
  const catalog = new OriginTable([
    { name: 'o', hosts: ['o.test'], upstreams: [`http://127.0.0.1:${origin.port}`] },
  ]);
  const noOpener = {
    open(): HopStream {
      throw new Error('the exit opens no streams');
    },
  };
  exit = new DataPlane({
    nodeId: 'exit',
    catalog,
    routes: new RouteTable({ nodeId: 'exit' }),
    opener: noOpener,
    dialer: new DirectDialer(),
  });
  listener = new TunnelListener({ nodeId: 'exit', token: TOKEN, host: '127.0.0.1', port: 0 });
  listener.on('tunnel', (t: Tunnel) => {
    t.session.on('stream', (s) => exit.handleStream(s as HopStream));
  });
  await listener.listen();
  tunnel = await new TunnelDialer({ nodeId: 'entry', token: TOKEN }).dial(listener.url);
  const routes = new RouteTable({ nodeId: 'entry' });
  routes.update([
    { from: 'entry', origin: 'o', path: ['entry', 'exit'], rttMs: 1, alternates: [] },
  ]);
  entry = new DataPlane({
    nodeId: 'entry',
    catalog,
    routes,
    opener: { open: () => tunnel.session.open() as HopStream },
    dialer: new DirectDialer(),
    httpListen: { host: '127.0.0.1', port: 0 },
  });
  entryPort = (await entry.start()).http!.port;
});

afterAll(async () => {
  await entry?.destroy();
  tunnel?.destroy();
  listener?.destroy();
  await exit?.destroy();
  await origin?.close();
});

/** Reads complete Content-Length responses off one socket, in order. */
class ResponseReader {
  #buf = Buffer.alloc(0);
  #waiting: Array<() => void> = [];
  #closed = false;

  constructor(socket: net.Socket) {
    socket.on('data', (c: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, c]);
      for (const w of this.#waiting.splice(0)) w();
    });
    socket.on('close', () => {
      this.#closed = true;
      for (const w of this.#waiting.splice(0)) w();
    });
  }

  /** The next response: status line, and body. Rejects when the connection closes first. */
  async next(): Promise<{ status: string; body: string }> {
    for (;;) {
      const text = this.#buf.toString('latin1');
      const sep = text.indexOf('\r\n\r\n');
      const cl = /\r\ncontent-length: (\d+)\r\n/i.exec(text.slice(0, sep + 2));
      if (sep >= 0 && cl) {
        const end = sep + 4 + Number(cl[1]);
        if (this.#buf.length >= end) {
          const status = text.slice(0, text.indexOf('\r\n'));
          const body = text.slice(sep + 4, end);
          this.#buf = this.#buf.subarray(end);
          return { status, body };
        }
      }
      if (this.#closed) throw new Error(`connection closed; unread: ${JSON.stringify(text)}`);
      await new Promise<void>((r) => this.#waiting.push(r));
    }
  }
}

async function connect(): Promise<{ socket: net.Socket; reader: ResponseReader }> {
  const socket = net.connect(entryPort, '127.0.0.1');
  socket.setNoDelay(true);
  const reader = new ResponseReader(socket);
  await new Promise((r) => socket.once('connect', r));
  return { socket, reader };
}

// The request wrk sends (HTTP/1.1, keep-alive is the default; no Connection header).
const get = (i: number) => `GET /r${i} HTTP/1.1\r\nHost: o.test\r\n\r\n`;

describe('keep-alive client connections through a ws tunnel', () => {
  it('answers 500 sequential requests on one connection, each with its own body', async () => {
    const { socket, reader } = await connect();
    try {
      for (let i = 0; i < 500; i++) {
        socket.write(get(i));
        const r = await reader.next();
        expect(r.status).toBe('HTTP/1.1 200 OK');
        expect(r.body).toBe(`ok /r${i}`);
      }
    } finally {
      socket.destroy();
    }
  });

  it('answers pipelined batches in order on one connection', async () => {
    const { socket, reader } = await connect();
    try {
      for (let batch = 0; batch < 20; batch++) {
        const ids = Array.from({ length: 8 }, (_, k) => batch * 8 + k);
        socket.write(ids.map(get).join(''));
        for (const i of ids) expect((await reader.next()).body).toBe(`ok /r${i}`);
      }
    } finally {
      socket.destroy();
    }
  });

  it('answers 50 connections at once, 40 sequential requests each', async () => {
    const conns = await Promise.all(Array.from({ length: 50 }, () => connect()));
    try {
      await Promise.all(
        conns.map(async ({ socket, reader }, c) => {
          for (let i = 0; i < 40; i++) {
            socket.write(get(c * 1000 + i));
            expect((await reader.next()).body).toBe(`ok /r${c * 1000 + i}`);
          }
        }),
      );
    } finally {
      for (const { socket } of conns) socket.destroy();
    }
    // One tunnel carried all 2,000 requests; the origin saw each once.
    expect(origin.requests).toBe(500 + 160 + 2000);
  });
});
