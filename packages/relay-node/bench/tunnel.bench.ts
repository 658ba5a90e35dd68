/**
 * WebSocket tunnel cost, against baselines measured in the same process and run:
 *  - bulk throughput of one mux stream over a ws tunnel (each direction: dialer to listener
 *    is masked, listener to dialer is not) vs the same Session over a plain TCP
 *    StreamTransport;
 *  - tunnels established per second (TCP + upgrade + hello + Session) vs plain ws
 *    connections opened and closed per second.
 * Prints one JSON line per measurement. Both ends run in this one process.
 *
 *   node --conditions=@relaymesh/source --import tsx packages/relay-node/bench/tunnel.bench.ts
 */
import { once } from 'node:events';
import net from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';
import {
  type MuxStream,
  Session,
  StreamTransport,
  type Tunnel,
  TunnelDialer,
  TunnelListener,
} from '../src/index.ts';

const BULK_BYTES = Number(process.env.BENCH_BULK_MIB ?? 256) * 1024 * 1024;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const HELLOS = Number(process.env.BENCH_HELLOS ?? 200);
const TOKEN = 'bench-token-0123456789abcdef0123456789abcdef';

/** MB/s of one stream from `from` to `to`; the receiver discards. */
async function bulk(from: Session, to: Session, total: number): Promise<number> {
  to.once('stream', (s: MuxStream) => {
    s.resume();
    s.once('end', () => s.end());
  });
  const s = from.open();
  const chunk = Buffer.alloc(64 * 1024, 1);
  const closed = once(s, 'close');
  const t0 = performance.now();
  for (let sent = 0; sent < total; sent += chunk.length) {
    if (!s.write(chunk)) await once(s, 'drain');
  }
  s.end();
  s.resume();
  await closed;
  return total / ((performance.now() - t0) / 1000) / 1e6;
}

async function tcpSessions(): Promise<{ client: Session; server: Session; close(): void }> {
  const srv = net.createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const accepted = once(srv, 'connection') as Promise<[net.Socket]>;
  const c = net.connect((srv.address() as net.AddressInfo).port, '127.0.0.1');
  await once(c, 'connect');
  const [s] = await accepted;
  srv.close();
  for (const x of [c, s]) x.setNoDelay(true);
  const client = new Session({ transport: new StreamTransport(c), role: 'client' });
  const server = new Session({ transport: new StreamTransport(s), role: 'server' });
  return {
    client,
    server,
    close() {
      client.destroy();
      server.destroy();
    },
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const round = (x: number, d = 0) => Number(x.toFixed(d));

async function throughput(listener: TunnelListener): Promise<void> {
  const accepted = once(listener, 'tunnel') as Promise<[Tunnel]>;
  const client = await new TunnelDialer({ nodeId: 'bench-b', token: TOKEN }).dial(listener.url);
  const [server] = await accepted;
  const tcp = await tcpSessions();
  const up: number[] = [];
  const down: number[] = [];
  const base: number[] = [];
  await bulk(client.session, server.session, 32 * 1024 * 1024); // warm-up
  for (let i = 0; i < ROUNDS; i++) {
    up.push(await bulk(client.session, server.session, BULK_BYTES));
    down.push(await bulk(server.session, client.session, BULK_BYTES));
    base.push(await bulk(tcp.client, tcp.server, BULK_BYTES));
  }
  tcp.close();
  client.destroy();
  const baseline = median(base);
  for (const [dir, xs] of [
    ['dialer-to-listener (masked)', up],
    ['listener-to-dialer', down],
  ] as const) {
    const value = median(xs);
    console.log(
      JSON.stringify({
        bench: `tunnel.bulk.${dir.split(' ')[0]}`,
        direction: dir,
        value: round(value),
        unit: 'MB/s, one stream, median of rounds',
        baseline: round(baseline),
        baselineIs: 'the same mux Session over a plain TCP StreamTransport',
        ratio: round(value / baseline, 2),
        rounds: xs.map((x) => round(x)),
        mib: BULK_BYTES / 1024 / 1024,
      }),
    );
  }
}

async function helloRate(listener: TunnelListener): Promise<void> {
  const dialer = new TunnelDialer({ nodeId: 'bench-c', token: TOKEN });
  const tunnels = async () => {
    const t0 = performance.now();
    for (let i = 0; i < HELLOS; i++) {
      const t = await dialer.dial(listener.url);
      t.destroy();
      await t.closed;
    }
    return HELLOS / ((performance.now() - t0) / 1000);
  };
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  await once(wss, 'listening');
  wss.on('connection', (ws) => ws.on('error', () => {}));
  const url = `ws://127.0.0.1:${(wss.address() as net.AddressInfo).port}`;
  const plain = async () => {
    const t0 = performance.now();
    for (let i = 0; i < HELLOS; i++) {
      const ws = new WebSocket(url, { perMessageDeflate: false });
      await once(ws, 'open');
      ws.terminate();
      await once(ws, 'close');
    }
    return HELLOS / ((performance.now() - t0) / 1000);
  };
  await tunnels(); // warm-up
  const value = await tunnels();
  const baseline = await plain();
  wss.close();
  console.log(
    JSON.stringify({
      bench: 'tunnel.establish',
      value: round(value),
      unit: 'tunnels per second (TCP, upgrade, hello, Session; sequential)',
      baseline: round(baseline),
      baselineIs: 'plain ws connections opened and terminated per second',
      ratio: round(value / baseline, 2),
      count: HELLOS,
    }),
  );
}

const listener = new TunnelListener({ nodeId: 'bench-a', token: TOKEN, host: '127.0.0.1' });
await listener.listen();
await throughput(listener);
await helloRate(listener);
listener.destroy();
