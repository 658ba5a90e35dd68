import { once } from 'node:events';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createDialer, HttpConnectDialer, isRelayError, type RelayError } from '../../src/index.ts';

// Everything a test opens is closed here, so a failing test leaks nothing.
const servers: net.Server[] = [];
const sockets: net.Socket[] = [];

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

async function listen(onConnection: (socket: net.Socket) => void): Promise<number> {
  const server = net.createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => {});
    onConnection(socket);
  });
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as net.AddressInfo).port;
}

/** Reads one request head from a raw socket. */
function readHead(socket: net.Socket): Promise<string> {
  return new Promise((resolve) => {
    let buf = '';
    const onData = (d: Buffer) => {
      buf += d.toString('latin1');
      const end = buf.indexOf('\r\n\r\n');
      if (end !== -1) {
        socket.off('data', onData);
        resolve(buf.slice(0, end));
      }
    };
    socket.on('data', onData);
  });
}

/** A minimal real CONNECT proxy: parses the head, dials the target, answers 200, splices. */
async function connectProxy(seenHeads: string[]): Promise<number> {
  return listen(async (client) => {
    const head = await readHead(client);
    seenHeads.push(head);
    const [host, port] = (head.split(' ')[1] ?? '').split(':');
    const upstream = net.connect(Number(port), host);
    sockets.push(upstream);
    upstream.on('error', () => client.destroy());
    upstream.once('connect', () => {
      client.write('HTTP/1.1 200 Connection established\r\n\r\n');
      client.pipe(upstream).pipe(client);
    });
  });
}

const echo = () => listen((s) => s.pipe(s));

async function roundTrip(socket: net.Socket, text: string): Promise<string> {
  socket.write(text);
  const [data] = (await once(socket, 'data')) as [Buffer];
  return data.toString();
}

async function dialError(p: Promise<unknown>): Promise<RelayError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!isRelayError(err)) throw new Error(`expected a RelayError, got ${String(err)}`);
  return err;
}

describe('HttpConnectDialer', () => {
  it('tunnels through a real CONNECT proxy', async () => {
    const heads: string[] = [];
    const target = await echo();
    const proxyPort = await connectProxy(heads);
    const dialer = new HttpConnectDialer(`http://127.0.0.1:${proxyPort}`);
    expect(dialer.description).toBe(`http-connect via 127.0.0.1:${proxyPort}`);
    const socket = await dialer.dial({ host: '127.0.0.1', port: target });
    sockets.push(socket);
    expect(await roundTrip(socket, 'ping')).toBe('ping');
    expect(heads[0]).toBe(`CONNECT 127.0.0.1:${target} HTTP/1.1\r\nHost: 127.0.0.1:${target}`);
  });

  it('sends Basic credentials from the URL but never shows them', async () => {
    const heads: string[] = [];
    const target = await echo();
    const proxyPort = await connectProxy(heads);
    const dialer = new HttpConnectDialer(`http://al%40ice:s3cr%3At@127.0.0.1:${proxyPort}`);
    expect(dialer.description).not.toContain('s3cr');
    const socket = await dialer.dial({ host: '127.0.0.1', port: target });
    sockets.push(socket);
    const expected = Buffer.from('al@ice:s3cr:t').toString('base64');
    expect(heads[0]).toContain(`\r\nProxy-Authorization: Basic ${expected}`);
  });

  it('keeps bytes that arrive in the same packet as the response head', async () => {
    const proxyPort = await listen(async (client) => {
      await readHead(client);
      client.write('HTTP/1.1 200 OK\r\nX-A: b\r\n\r\nhello from far');
    });
    const socket = await new HttpConnectDialer(`http://127.0.0.1:${proxyPort}`).dial({
      host: '127.0.0.1',
      port: 9,
    });
    sockets.push(socket);
    const chunks: Buffer[] = [];
    socket.on('data', (d: Buffer) => chunks.push(d));
    await new Promise((r) => setTimeout(r, 50));
    expect(Buffer.concat(chunks).toString()).toBe('hello from far');
  });

  it.each([
    [407, 'Proxy Authentication Required'],
    [502, 'Bad Gateway'],
  ])('maps a %i answer to ERR_DIAL_PROXY_REJECTED with the status', async (status, reason) => {
    const proxyPort = await listen(async (client) => {
      await readHead(client);
      client.end(`HTTP/1.1 ${status} ${reason}\r\nContent-Length: 0\r\n\r\n`);
    });
    const err = await dialError(
      new HttpConnectDialer(`http://127.0.0.1:${proxyPort}`).dial({ host: '127.0.0.1', port: 1 }),
    );
    expect(err.code).toBe('ERR_DIAL_PROXY_REJECTED');
    expect(err.message).toContain(String(status));
    expect(err.details?.status).toBe(status);
    expect(err.retryable).toBe(false);
  });

  it('times out against a proxy that accepts TCP and never answers', async () => {
    const proxyPort = await listen(() => {});
    const started = performance.now();
    const err = await dialError(
      new HttpConnectDialer(`http://127.0.0.1:${proxyPort}`, { timeoutMs: 200 }).dial({
        host: '127.0.0.1',
        port: 1,
      }),
    );
    expect(err.code).toBe('ERR_DIAL_TIMEOUT');
    expect(performance.now() - started).toBeLessThan(2000);
  });

  it('rejects a non-HTTP reply and an oversized head as ERR_DIAL_PROXY_PROTOCOL', async () => {
    const garbage = await listen((c) => c.write('SSH-2.0-OpenSSH\r\n\r\n'));
    const huge = await listen((c) => c.write(`HTTP/1.1 200 OK\r\nX: ${'a'.repeat(10_000)}`));
    const closes = await listen((c) => c.end());
    for (const port of [garbage, huge, closes]) {
      const err = await dialError(
        new HttpConnectDialer(`http://127.0.0.1:${port}`, { timeoutMs: 2000 }).dial({
          host: '127.0.0.1',
          port: 1,
        }),
      );
      expect(err.code).toBe('ERR_DIAL_PROXY_PROTOCOL');
    }
  });

  it('maps a proxy that refuses TCP to ERR_DIAL_REFUSED', async () => {
    const port = await listen(() => {});
    await new Promise((r) => servers.pop()?.close(r));
    const err = await dialError(
      new HttpConnectDialer(`http://127.0.0.1:${port}`).dial({ host: '127.0.0.1', port: 1 }),
    );
    expect(err.code).toBe('ERR_DIAL_REFUSED');
  });

  it('stops when the signal aborts during the CONNECT exchange', async () => {
    const proxyPort = await listen(() => {});
    const ac = new AbortController();
    const p = new HttpConnectDialer(`http://127.0.0.1:${proxyPort}`).dial(
      { host: '127.0.0.1', port: 1 },
      { signal: ac.signal },
    );
    setTimeout(() => ac.abort(), 20);
    const err = await dialError(p);
    expect(err.code).toBe('ERR_DIAL_REFUSED');
    expect(err.message).toContain('aborted');
  });

  it('refuses a proxy URL that is not http://', () => {
    expect(() => new HttpConnectDialer('https://u:secret@proxy:3128')).toThrow(
      expect.objectContaining({ code: 'ERR_CONFIG_INVALID' }),
    );
    expect(() => new HttpConnectDialer('https://u:secret@proxy:3128')).not.toThrow(/secret/);
  });
});

describe('createDialer', () => {
  it('goes direct without a proxy and through it with one', async () => {
    const heads: string[] = [];
    const target = await echo();
    const direct = createDialer();
    expect(direct.description).toBe('direct');
    const a = await direct.dial({ host: '127.0.0.1', port: target });
    sockets.push(a);
    expect(await roundTrip(a, 'x')).toBe('x');

    const proxyPort = await connectProxy(heads);
    const viaProxy = createDialer({ egressProxy: `http://127.0.0.1:${proxyPort}` });
    const b = await viaProxy.dial({ host: '127.0.0.1', port: target });
    sockets.push(b);
    expect(await roundTrip(b, 'y')).toBe('y');
    expect(heads).toHaveLength(1);
  });
});
