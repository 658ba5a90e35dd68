import { execFile } from 'node:child_process';
import net, { type AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { ForwardServer } from '../../src/proxy/tcp/forward-server.ts';
import { buildMesh, type Mesh, route, startOrigin, type TestOrigin } from './mesh.ts';

const run = promisify(execFile);

/** curl as a real client; no proxy variables leak in from the environment. */
async function curl(...args: string[]): Promise<string> {
  const { stdout } = await run('/usr/bin/curl', ['-sS', '--max-time', '10', ...args], {
    env: { PATH: process.env.PATH ?? '/usr/bin' },
    timeout: 15_000,
  });
  return stdout;
}

describe.each(['memory', 'tcp'] as const)(
  'curl, CONNECT, TCP forwards and WebSocket through entry -> relay -> exit (%s sessions)',
  (transport) => {
    let mesh: Mesh;
    let origin: TestOrigin;
    let echo: net.Server;
    let echoPort = 0;
    let wss: WebSocketServer;
    let forward: ForwardServer;
    let forwardPort = 0;

    beforeAll(async () => {
      origin = await startOrigin((req, res) =>
        res.end(`hello ${req.method} ${req.url} via=${req.headers.via}`),
      );
      wss = new WebSocketServer({ server: origin.server });
      wss.on('connection', (ws, req) => {
        ws.on('message', (m, isBinary) =>
          ws.send(isBinary ? m : `echo:${m.toString()}:${req.url}`),
        );
      });
      // Echoes, and on the client's FIN sends "bye" and its own FIN (half-close both ways).
      echo = net.createServer({ allowHalfOpen: true }, (s) => {
        s.on('data', (c) => s.write(c));
        s.on('end', () => s.end('bye'));
        s.on('error', () => {});
      });
      await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
      echoPort = (echo.address() as AddressInfo).port;
      const path = ['en', 'rl', 'ex'];
      mesh = await buildMesh({
        nodes: path,
        links: [
          ['en', 'rl'],
          ['rl', 'ex'],
        ],
        transport,
        origins: [
          { name: 'files', hosts: ['files.example'], upstreams: [origin.url] },
          { name: 'echo', hosts: ['echo.example'], upstreams: [`tcp://127.0.0.1:${echoPort}`] },
        ],
        routes: [route('files', path), route('echo', path)],
      });
      const en = mesh.node('en');
      forward = new ForwardServer({
        rule: { host: '127.0.0.1', port: 0, origin: 'echo' },
        catalog: mesh.catalog,
        connector: en.connector,
      });
      forwardPort = (await forward.listen()).port;
    });
    afterAll(async () => {
      forward?.destroy();
      await mesh?.close();
      for (const c of wss?.clients ?? []) c.terminate();
      wss?.close();
      await origin?.close();
      echo?.close();
    });

    it('curl: reverse proxy by Host header', async () => {
      const out = await curl('-H', 'Host: files.example', `${mesh.node('en').url}/r?q=1`);
      expect(out).toBe('hello GET /r?q=1 via=1.1 en');
    });

    it('curl -x: forward proxy in absolute form', async () => {
      const out = await curl('-x', mesh.node('en').url, 'http://files.example/fwd');
      expect(out).toBe('hello GET /fwd via=1.1 en');
    });

    it('curl --proxytunnel: CONNECT to a declared origin port, bytes end to end', async () => {
      const out = await curl(
        '-p',
        '-x',
        mesh.node('en').url,
        `http://files.example:${origin.port}/tunnelled`,
      );
      // Through a CONNECT tunnel the entry never sees the request: no Via added.
      expect(out).toBe('hello GET /tunnelled via=undefined');
    });

    it('raw TCP forward echoes and half-closes both ways', async () => {
      const socket = net.connect({ port: forwardPort, host: '127.0.0.1', allowHalfOpen: true });
      const chunks: Buffer[] = [];
      socket.on('data', (c: Buffer) => chunks.push(c));
      const ended = new Promise<void>((r) => socket.once('end', r));
      socket.write('ping-1 ');
      socket.write('ping-2');
      // Wait for the echo before sending FIN, so the order of bytes is known.
      for (let i = 0; i < 100 && Buffer.concat(chunks).length < 13; i++)
        await new Promise((r) => setTimeout(r, 20));
      socket.end();
      await ended;
      expect(Buffer.concat(chunks).toString()).toBe('ping-1 ping-2bye');
      socket.destroy();
    });

    it('passes a WebSocket upgrade through two hops and echoes messages', async () => {
      const ws = new WebSocket(`${mesh.node('en').url.replace('http', 'ws')}/chat`, {
        headers: { host: 'files.example' },
      });
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
      const replies: string[] = [];
      const got = new Promise<void>((r) =>
        ws.on('message', (m) => {
          replies.push(m.toString());
          if (replies.length === 2) r();
        }),
      );
      ws.send('one');
      ws.send('two');
      await got;
      expect(replies).toEqual(['echo:one:/chat', 'echo:two:/chat']);
      const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
      ws.close(1000);
      expect(await closed).toBe(1000);
    });
  },
);
