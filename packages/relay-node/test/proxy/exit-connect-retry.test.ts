import { type ChildProcess, spawn } from 'node:child_process';
import net, { type AddressInfo } from 'node:net';
import { connectTcp, type Dialer, type DialOptions, type DialTarget } from '@relaymesh/shared';
import { afterEach, describe, expect, it } from 'vitest';
import type { OriginConfig } from '../../src/routing/origin-catalog.ts';
import type { RouteEntry } from '../../src/routing/route-table.ts';
import {
  buildMesh,
  type Mesh,
  type Outcome,
  readUntil,
  route,
  sendToEntry,
  startEcho,
  startOrigin,
  type TestOrigin,
} from './mesh.ts';

// An exit that cannot connect to the origin (its own link to it is cut) answers
// ERR_PROXY_UPSTREAM_CONNECT; nothing reached the origin, so the entry sends the request once
// through another exit, whatever its method (docs/data-plane.md 4.7). Exits here reach the
// origin over real loopback sockets; ex1's link to it is cut in one of two real ways: its
// connects go to a port nobody listens on (refused), or to a listener whose process is
// stopped and whose accept queue is full, so the kernel drops the SYNs (the connect times
// out, as through a blackholed link).

/** ex1 reaches every upstream at 127.0.0.1:`port` instead: its link to the origin, cut. */
class CutLink implements Dialer {
  readonly description: string;
  readonly #port: number;
  constructor(port: number) {
    this.#port = port;
    this.description = `cut (127.0.0.1:${port})`;
  }
  dial(_target: DialTarget, options?: DialOptions): Promise<net.Socket> {
    return connectTcp({ host: '127.0.0.1', port: this.#port }, options);
  }
}

/** A port nothing listens on: connects to it are refused. */
async function refusingPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/**
 * A listener with a one-slot accept queue in a process that is then stopped (SIGSTOP), its
 * queue filled: the kernel drops every further SYN, so connects to it time out.
 */
async function silentPort(): Promise<{ port: number; fillers: net.Socket[]; proc: ChildProcess }> {
  const proc = spawn(
    process.execPath,
    [
      '-e',
      `const s = require('node:net').createServer();
       s.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () =>
         process.stdout.write(s.address().port + '\\n'));`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const port = await new Promise<number>((resolve, reject) => {
    proc.stdout?.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    proc.once('exit', (code) => reject(new Error(`listener exited with ${code}`)));
  });
  proc.kill('SIGSTOP');
  // The queue holds backlog + 1 finished handshakes; the rest wait on SYN retransmits.
  const fillers: net.Socket[] = [];
  for (let i = 0; i < 4; i++) {
    const c = net.connect(port, '127.0.0.1');
    c.on('error', () => {});
    fillers.push(c);
  }
  await new Promise((r) => setTimeout(r, 100));
  return { port, fillers, proc };
}

let mesh: Mesh | undefined;
let origin: TestOrigin | undefined;
const cleanups: Array<() => void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) c();
  await mesh?.close();
  await origin?.close();
  mesh = undefined;
  origin = undefined;
});

interface Seen {
  method: string;
  url: string;
  bodyBytes: number;
}

interface TwoExitsOptions {
  /** Default: every origin over en,ex1 with en,ex2 as the alternate. */
  routes?: (origins: OriginConfig[]) => RouteEntry[];
  extraOrigins?: OriginConfig[];
  /** Default: direct. */
  ex2Dialer?: Dialer;
}

/** Entry en and two exits; ex1 reaches the origin through `ex1Dialer`. */
async function twoExits(ex1Dialer: Dialer, seen: Seen[], o: TwoExitsOptions = {}): Promise<Mesh> {
  const routes =
    o.routes ??
    ((os: OriginConfig[]) => os.map((x) => route(x.name, ['en', 'ex1'], ['en', 'ex2'])));
  origin = await startOrigin((req, res) => {
    let bodyBytes = 0;
    req.on('data', (c: Buffer) => {
      bodyBytes += c.length;
    });
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', bodyBytes });
      res.end(`got ${bodyBytes}`);
    });
  });
  const origins = [
    { name: 'files', hosts: ['files.example'], upstreams: [origin.url] },
    ...(o.extraOrigins ?? []),
  ];
  mesh = await buildMesh({
    nodes: ['en', 'ex1', 'ex2'],
    links: [
      ['en', 'ex1'],
      ['en', 'ex2'],
    ],
    origins,
    routes: routes(origins),
    dialers: { ex1: ex1Dialer, ...(o.ex2Dialer ? { ex2: o.ex2Dialer } : {}) },
    exit: { pool: { connectTimeoutMs: 500 }, healthChecks: false },
  });
  return mesh;
}

function send(m: Mesh, method: string, path: string, body?: Buffer): Promise<Outcome> {
  return sendToEntry(m, method, path, body ? { body } : {});
}

describe('an exit that cannot connect to the origin', () => {
  it('refused: a GET, a plain POST and a PUT go through the other exit, each reaching the origin once', async () => {
    const seen: Seen[] = [];
    const m = await twoExits(new CutLink(await refusingPort()), seen);
    expect(await send(m, 'GET', '/a')).toMatchObject({
      status: 200,
      path: 'en,ex2',
      body: 'got 0',
    });
    // Not idempotent, but nothing reached the origin: sent once more all the same.
    expect(await send(m, 'POST', '/b', Buffer.alloc(100, 1))).toMatchObject({
      status: 200,
      path: 'en,ex2',
      body: 'got 100',
    });
    expect(await send(m, 'PUT', '/c', Buffer.alloc(10, 1))).toMatchObject({
      status: 200,
      path: 'en,ex2',
      body: 'got 10',
    });
    expect(seen).toEqual([
      { method: 'GET', url: '/a', bodyBytes: 0 },
      { method: 'POST', url: '/b', bodyBytes: 100 },
      { method: 'PUT', url: '/c', bodyBytes: 10 },
    ]);
  });

  it('connect timed out (SYNs dropped): the GET goes through the other exit', async () => {
    const silent = await silentPort();
    cleanups.push(() => {
      for (const c of silent.fillers) c.destroy();
      silent.proc.kill('SIGKILL');
    });
    const seen: Seen[] = [];
    const m = await twoExits(new CutLink(silent.port), seen);
    expect(await send(m, 'GET', '/slow-link')).toMatchObject({ status: 200, path: 'en,ex2' });
    expect(seen.map((s) => s.url)).toEqual(['/slow-link']);
  });

  it('with no other exit the client gets the exit answer: 502, and 504 for a timed-out connect', async () => {
    const onlyEx1 = (os: OriginConfig[]) => os.map((o) => route(o.name, ['en', 'ex1']));
    const seen: Seen[] = [];
    let m = await twoExits(new CutLink(await refusingPort()), seen, { routes: onlyEx1 });
    expect(await send(m, 'GET', '/x')).toMatchObject({
      status: 502,
      path: 'en,ex1',
      error: 'ERR_PROXY_UPSTREAM_CONNECT',
    });
    await m.close();
    await origin?.close();
    const silent = await silentPort();
    cleanups.push(() => {
      for (const c of silent.fillers) c.destroy();
      silent.proc.kill('SIGKILL');
    });
    m = await twoExits(new CutLink(silent.port), seen, { routes: onlyEx1 });
    const r = await send(m, 'GET', '/y');
    expect(r).toMatchObject({ status: 504, path: 'en,ex1', error: 'ERR_PROXY_UPSTREAM_CONNECT' });
    expect(r.body).toContain('connect timed out');
    expect(seen).toEqual([]);
  });

  it('cut at both exits: one retry only, the second exit answers 502', async () => {
    const refused = new CutLink(await refusingPort());
    const seen: Seen[] = [];
    const m = await twoExits(refused, seen, { ex2Dialer: refused });
    expect(await send(m, 'POST', '/z', Buffer.alloc(5, 1))).toMatchObject({
      status: 502,
      path: 'en,ex2',
      error: 'ERR_PROXY_UPSTREAM_CONNECT',
    });
    expect(seen).toEqual([]);
  });

  it('a request the origin answered with an error is not sent again', async () => {
    // ex1 reaches a server that resets every connection once the request is in: the
    // request went out, so its failure is ERR_PROXY_UPSTREAM_RESET and no retry follows.
    let got = 0;
    const resetting = net.createServer((s) => {
      s.once('data', () => {
        got++;
        s.resetAndDestroy();
      });
      s.on('error', () => {});
    });
    await new Promise<void>((r) => resetting.listen(0, '127.0.0.1', r));
    cleanups.push(() => resetting.close());
    const seen: Seen[] = [];
    const m = await twoExits(new CutLink((resetting.address() as AddressInfo).port), seen);
    const r = await send(m, 'POST', '/once', Buffer.alloc(10, 1));
    expect(r).toMatchObject({ status: 502, path: 'en,ex1', error: 'ERR_PROXY_UPSTREAM_RESET' });
    expect(got).toBe(1);
    expect(seen).toEqual([]);
  });

  it('CONNECT to a TCP origin goes through the other exit when ex1 is refused', async () => {
    const { server: echo, port: echoPort } = await startEcho();
    cleanups.push(() => echo.close());
    const m = await twoExits(new CutLink(await refusingPort()), [], {
      extraOrigins: [
        { name: 'echo', hosts: ['echo.example'], upstreams: [`tcp://127.0.0.1:${echoPort}`] },
      ],
    });
    const c = net.connect({ port: m.node('en').port, host: '127.0.0.1' });
    c.write(`CONNECT echo.example:${echoPort} HTTP/1.1\r\nHost: echo.example:${echoPort}\r\n\r\n`);
    const head = await readUntil(c, '\r\n\r\n');
    // Only ex2 can reach the echo server (the CONNECT answer names no path).
    expect(head.split('\r\n')[0]).toBe('HTTP/1.1 200 Connection Established');
    c.write('hello');
    expect(await readUntil(c, 'hello')).toBe('hello');
    c.destroy();
  });
});
