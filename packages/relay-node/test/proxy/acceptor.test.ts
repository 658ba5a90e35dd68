import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { createRootLogger } from '@relaymesh/shared';
import { afterEach, describe, expect, it } from 'vitest';
import type { DataPlane } from '../../src/proxy/data-plane.ts';
import { OriginTable } from '../../src/routing/origin-catalog.ts';
import { RouteTable } from '../../src/routing/route-table.ts';
import { statField } from '../proc.ts';
import { peerlessEntryPlane, saturatedLoop, startOrigin, type TestOrigin } from './mesh.ts';

/**
 * `acceptor: 'process'`: the entry's listener lives in an acceptor process of its own
 * (src/proxy/http/acceptor-child.ts), which hands connections over as the admission gate
 * lets them in. Real processes, real sockets on loopback.
 */
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Whether `pid` runs (a zombie, exited and not reaped yet, does not). */
function alive(pid: number): boolean {
  try {
    return statField(`/proc/${pid}/stat`, 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Socket inodes of the listeners on `port` (/proc/net/tcp, state 0A). */
function listenerInodes(port: number): string[] {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  return readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f[1]?.endsWith(`:${hex}`) && f[3] === '0A')
    .map((f) => f[9] as string);
}

/** Socket inodes a process holds open. */
function socketInodes(pid: number): Set<string> {
  const out = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) out.add(m[1] as string);
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

function capture(): { lines: LogLine[]; logger: ReturnType<typeof createRootLogger> } {
  const lines: LogLine[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line));
      cb();
    },
  });
  return { lines, logger: createRootLogger({ name: 'test', level: 'info', destination }) };
}

/** An entry whose acceptor is a process, serving origin `o.test` through its own exit. */
async function entryWithAcceptor(
  entry: Parameters<typeof peerlessEntryPlane>[0] = {},
  extra: Parameters<typeof peerlessEntryPlane>[1] = {},
): Promise<{ plane: DataPlane; port: number; origin: TestOrigin; pid: () => number }> {
  const origin = await startOrigin((_req, res) => res.end('hello'));
  cleanups.push(() => origin.close());
  const routes = new RouteTable({ nodeId: 'en' });
  routes.update([{ from: 'en', origin: 'o', path: ['en'], rttMs: 1, alternates: [] }]);
  const plane = peerlessEntryPlane(
    { acceptor: 'process', ...entry },
    {
      catalog: new OriginTable([{ name: 'o', hosts: ['o.test'], upstreams: [origin.url] }]),
      routes,
      exit: { healthChecks: false },
      ...extra,
    },
  );
  const { http } = await plane.start();
  cleanups.push(() => plane.destroy());
  const e = plane.entry as NonNullable<DataPlane['entry']>;
  return {
    plane,
    port: (http as net.AddressInfo).port,
    origin,
    pid: () => e.acceptorPid as number,
  };
}

/** GET / for o.test on a fresh connection: the whole answer, or '' if closed without one. */
function get(port: number, from = '127.0.0.1'): { done: Promise<string>; socket: net.Socket } {
  const socket = net.connect({ port, host: '127.0.0.1', localAddress: from });
  socket.on('error', () => {});
  socket.write('GET / HTTP/1.1\r\nHost: o.test\r\nConnection: close\r\n\r\n');
  let got = '';
  socket.on('data', (d: Buffer) => {
    got += d.toString('latin1');
  });
  return { socket, done: new Promise((r) => socket.once('close', () => r(got))) };
}

/** Saturates this process's loop (the entry's) until the returned function is called. */
const saturated = () => saturatedLoop((stop) => cleanups.push(stop));

describe("entry acceptor: 'process'", () => {
  it('serves requests; the listening socket is held by the acceptor, not the entry', async () => {
    const { port, pid } = await entryWithAcceptor();
    expect(pid()).toBeGreaterThan(0);
    expect(pid()).not.toBe(process.pid);
    const answers = await Promise.all(Array.from({ length: 20 }, () => get(port).done));
    for (const a of answers) {
      expect(a).toMatch(/^HTTP\/1\.1 200 /);
      expect(a.endsWith('hello')).toBe(true);
    }
    const [inode] = listenerInodes(port);
    expect(inode).toBeDefined();
    expect(socketInodes(pid()).has(inode as string)).toBe(true);
    expect(socketInodes(process.pid).has(inode as string)).toBe(false);
  });

  it('an acceptor that dies is replaced on the same port, and said so in the log', {
    timeout: 20_000,
  }, async () => {
    const { lines, logger } = capture();
    const { port, pid } = await entryWithAcceptor({}, { logger });
    const first = pid();
    process.kill(first, 'SIGKILL');
    for (let i = 0; i < 200 && (pid() === first || pid() === undefined); i++) await sleep(20);
    expect(pid()).toBeGreaterThan(0);
    expect(pid()).not.toBe(first);
    // Listening again (the replacement says so before its pid is published as ready).
    let answer = '';
    for (let i = 0; i < 100 && !answer.startsWith('HTTP/1.1 200'); i++) {
      answer = await get(port).done;
      if (!answer) await sleep(50);
    }
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    const died = lines.find((l) => l.msg.startsWith('acceptor process died'));
    expect(died).toMatchObject({ level: 50, signal: 'SIGKILL' });
    expect(lines.some((l) => l.msg === 'acceptor process replaced')).toBe(true);
  });

  it('while the loop is saturated, connections wait in the acceptor and go in at the gate rate, round-robin by source; a drain closes those waiting and stops the acceptor', {
    timeout: 30_000,
  }, async () => {
    const { lines, logger } = capture();
    const { plane, port, pid } = await entryWithAcceptor({ busyConnectionRate: 4 }, { logger });
    const acceptor = pid();
    const gate = () => plane.entry?.admission;
    const stop = await saturated();
    // The gate throttles once the loop's first saturated slice is sampled, on the first
    // connection; the flood from one address comes after.
    const first = get(port, '127.0.0.2');
    await sleep(300);
    const flood = Array.from({ length: 24 }, () => get(port, '127.0.0.2'));
    // Up to 8 handles already on their way when the gate throttles go in too.
    for (let i = 0; i < 150 && (gate()?.queued ?? 0) < 8; i++) await sleep(20);
    expect(gate()?.queued).toBeGreaterThanOrEqual(8);
    const t0 = performance.now();
    const admitted0 = gate()?.admitted ?? 0;
    // Another address: let in within a turn or two, not behind the flood.
    const other = get(port, '127.0.0.3');
    const otherAnswer = await other.done;
    expect(otherAnswer).toMatch(/^HTTP\/1\.1 200 /);
    const waitingThen = gate()?.queued ?? 0;
    expect(waitingThen).toBeGreaterThanOrEqual(5);
    await sleep(1_000);
    const elapsedS = (performance.now() - t0) / 1000;
    const letIn = (gate()?.admitted ?? 0) - admitted0;
    // 4/s, plus the bucket and a token's rounding.
    expect(letIn).toBeLessThanOrEqual(Math.ceil(4 * elapsedS * 1.25) + 2);
    expect(gate()?.accepted).toBeGreaterThanOrEqual(26);
    await plane.close();
    stop();
    const got = await Promise.all([first.done, ...flood.map((f) => f.done)]);
    const answered = got.filter((g) => g.startsWith('HTTP/1.1 200'));
    const closed = got.filter((g) => g === '');
    expect(answered.length + closed.length).toBe(25);
    expect(closed.length).toBeGreaterThanOrEqual(3);
    // The acceptor is gone, and so is the listener.
    for (let i = 0; i < 100 && alive(acceptor); i++) await sleep(20);
    expect(alive(acceptor)).toBe(false);
    expect(listenerInodes(port)).toEqual([]);
    const warned = lines.filter((l) => l.msg.startsWith('event loop saturated'));
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({ level: 40, rate: 4 });
  });

  it('holds at most maxConnections client connections: the one over is closed unanswered', async () => {
    const { port } = await entryWithAcceptor({ maxConnections: 2, keepAliveTimeoutMs: 10_000 });
    const keep = () => {
      const s = net.connect(port, '127.0.0.1');
      s.on('error', () => {});
      s.write('GET / HTTP/1.1\r\nHost: o.test\r\n\r\n');
      let got = '';
      s.on('data', (d: Buffer) => {
        got += d.toString('latin1');
      });
      cleanups.push(() => s.destroy());
      return { s, got: () => got, closed: new Promise<void>((r) => s.once('close', () => r())) };
    };
    const a = keep();
    const b = keep();
    for (let i = 0; i < 100 && !(a.got().endsWith('hello') && b.got().endsWith('hello')); i++)
      await sleep(20);
    const c = keep();
    await c.closed;
    expect(c.got()).toBe('');
    expect(a.got().endsWith('hello') && b.got().endsWith('hello')).toBe(true);
  });

  it('a port in use: start() fails with the listen error, and no acceptor is left', async () => {
    const taken = net.createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    cleanups.push(() => taken.close());
    const port = (taken.address() as net.AddressInfo).port;
    const plane = peerlessEntryPlane(
      { acceptor: 'process' },
      { httpListen: { host: '127.0.0.1', port } },
    );
    cleanups.push(() => plane.destroy());
    await expect(plane.start()).rejects.toMatchObject({ code: 'EADDRINUSE' });
    const pid = plane.entry?.acceptorPid;
    if (pid !== undefined) {
      for (let i = 0; i < 100 && alive(pid); i++) await sleep(20);
      expect(alive(pid)).toBe(false);
    }
  });

  it('refuses an acceptor that is not process or inline', () => {
    expect(() => peerlessEntryPlane({ acceptor: 'thread' as 'process' })).toThrow(
      expect.objectContaining({ code: 'ERR_CONFIG_INVALID' }),
    );
  });

  /** Runs a fixture (its own entry process) and reads its first line, {"acceptorPid":N,...}. */
  async function fixtureEntry<T extends { acceptorPid: number }>(
    name: string,
  ): Promise<{ child: ReturnType<typeof spawn>; ready: T }> {
    const fixture = fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
    const child = spawn(
      process.execPath,
      ['--conditions=@relaymesh/source', '--import', 'tsx', fixture],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    cleanups.push(() => child.kill('SIGKILL'));
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
    });
    for (let i = 0; i < 500 && !out.includes('\n'); i++) await sleep(20);
    const ready = JSON.parse(out.split('\n')[0] as string) as T;
    cleanups.push(() => {
      if (alive(ready.acceptorPid)) process.kill(ready.acceptorPid, 'SIGKILL');
    });
    return { child, ready };
  }

  it("exits when the entry's process dies", { timeout: 20_000 }, async () => {
    const { child, ready } = await fixtureEntry<{ port: number; acceptorPid: number }>(
      'acceptor-entry.ts',
    );
    expect(alive(ready.acceptorPid)).toBe(true);
    expect(await get(ready.port).done).toMatch(/^HTTP\/1\.1 /);
    child.kill('SIGKILL');
    for (let i = 0; i < 150 && alive(ready.acceptorPid); i++) await sleep(20);
    expect(alive(ready.acceptorPid)).toBe(false);
  });

  it('exits when the entry dies with handles on their way (Node defers the disconnect until their ack)', {
    timeout: 20_000,
  }, async () => {
    const { child, ready } = await fixtureEntry('acceptor-orphan.ts');
    await new Promise((r) => child.once('exit', r));
    for (let i = 0; i < 150 && alive(ready.acceptorPid); i++) await sleep(20);
    expect(alive(ready.acceptorPid)).toBe(false);
  });
});
