import { once } from 'node:events';
import net from 'node:net';

/** Servers and sockets a test opened; `closeAll()` in afterEach leaves nothing behind. */
export class Resources {
  readonly servers: net.Server[] = [];
  readonly sockets: net.Socket[] = [];
  readonly closers: (() => Promise<void> | void)[] = [];

  socket<T extends net.Socket>(s: T): T {
    this.sockets.push(s);
    s.on('error', () => {});
    return s;
  }

  async listen(onConnection: (socket: net.Socket) => void): Promise<number> {
    const server = net.createServer({ allowHalfOpen: true }, (s) => onConnection(this.socket(s)));
    this.servers.push(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return (server.address() as net.AddressInfo).port;
  }

  async closeAll(): Promise<void> {
    for (const s of this.sockets.splice(0)) s.destroy();
    for (const c of this.closers.splice(0)) await c();
    await Promise.all(this.servers.splice(0).map((s) => new Promise((r) => s.close(r))));
  }
}

/** Resolves with the next data chunk, or rejects after `ms`. */
export function nextData(socket: net.Socket, ms: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.off('data', onData);
      reject(new Error(`no data within ${ms} ms`));
    }, ms);
    const onData = (d: Buffer) => {
      clearTimeout(timer);
      resolve(d);
    };
    socket.once('data', onData);
  });
}

/** One ping-pong through an echo: returns the round-trip time in ms. */
export async function pingMs(socket: net.Socket, ms = 5000): Promise<number> {
  const started = performance.now();
  const reply = nextData(socket, ms);
  socket.write('p');
  await reply;
  return performance.now() - started;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
