import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import { createRootLogger } from '@relaymesh/shared';
import { afterEach, describe, expect, it } from 'vitest';
import { AdmissionGate, type AdmissionOptions } from '../../src/proxy/http/admission.ts';
import { peerlessEntryPlane, saturatedLoop } from './mesh.ts';

/**
 * The admission gate on real sockets. The loop is saturated by this process itself: an
 * interval that spins 20 ms of every 21 (event-loop utilisation ~0.95).
 */
const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Saturates this process's loop (the entry's) until the returned function is called. */
const saturated = () => saturatedLoop((stop) => cleanups.push(stop));

interface Admission {
  from: string;
  at: number;
  /** How many had been let in before it. */
  index: number;
}

async function gated(
  busyRate: number,
  hooks: Pick<AdmissionOptions, 'onThrottled' | 'onOpen'> = {},
) {
  const admitted: Admission[] = [];
  const gate = new AdmissionGate({
    ...hooks,
    busyRate,
    admit: (socket) => {
      admitted.push({
        from: socket.remoteAddress ?? '',
        at: performance.now(),
        index: admitted.length,
      });
      socket.destroy();
    },
  });
  const server = net.createServer({ pauseOnConnect: true }, (s) => gate.offer(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  const clients: net.Socket[] = [];
  cleanups.push(() => {
    gate.close();
    server.close();
    for (const c of clients) c.destroy();
  });
  const connect = (from: string) =>
    new Promise<void>((resolve, reject) => {
      const c = net.connect({ port, host: '127.0.0.1', localAddress: from }, () => resolve());
      c.on('error', reject);
      c.resume();
      clients.push(c);
    });
  return { gate, admitted, connect, clients };
}

describe('AdmissionGate', () => {
  it('while the loop is saturated lets in at most its rate, round-robin by source address', {
    timeout: 20_000,
  }, async () => {
    const { gate, admitted, connect } = await gated(5);
    const stop = await saturated();
    // Offered: accepted by the server and handed to the gate (one accept per loop turn).
    const offered = () => gate.stats.admitted + gate.stats.queued;
    // 40 from one address, then 3 from another once those wait.
    await Promise.all(Array.from({ length: 40 }, () => connect('127.0.0.2')));
    for (let i = 0; i < 200 && offered() < 40; i++) await sleep(20);
    const t0 = performance.now();
    const n0 = admitted.length;
    await Promise.all(Array.from({ length: 3 }, () => connect('127.0.0.3')));
    for (let i = 0; i < 200 && offered() < 43; i++) await sleep(20);
    // FIFO would let these 15 or more in first.
    expect(gate.stats.queued).toBeGreaterThanOrEqual(15);
    const before = admitted.length;
    for (let i = 0; i < 300 && admitted.filter((a) => a.from === '127.0.0.3').length < 3; i++)
      await sleep(20);
    const elapsedS = (performance.now() - t0) / 1000;
    const n1 = admitted.length;
    stop();
    const late = admitted.filter((a) => a.from === '127.0.0.3');
    expect(late).toHaveLength(3);
    // Each went in within a few turns of the other address, not after its 15 or more waiting.
    for (const a of late) expect(a.index - before).toBeLessThanOrEqual(8);
    // The rate: 5/s, plus the bucket (1) and a token's rounding.
    expect(n1 - n0).toBeLessThanOrEqual(Math.ceil(5 * elapsedS * 1.25) + 2);
    expect(gate.stats.rate).toBeLessThan(5 * 16);
    expect(gate.stats.maxWaitMs).toBeGreaterThan(0);
  });

  it('opens again once the loop has been idle, and lets a connection in at once', {
    timeout: 20_000,
  }, async () => {
    const events: string[] = [];
    let opened: { waited: number; maxWaitMs: number } | undefined;
    const { gate, admitted, connect } = await gated(20, {
      onThrottled: ({ rate }) => events.push(`throttled at ${rate}`),
      onOpen: (e) => {
        events.push('open');
        opened = e;
      },
    });
    const stop = await saturated();
    await Promise.all(Array.from({ length: 10 }, () => connect('127.0.0.2')));
    expect(gate.stats.rate).toBe(20);
    stop();
    // Mostly idle: the rate doubles every 100 ms, past 16 x the floor in well under 2 s.
    await sleep(2_000);
    const before = admitted.length + gate.stats.queued;
    await connect('127.0.0.4');
    for (let i = 0; i < 100 && admitted.length < before + 1; i++) await sleep(20);
    expect(gate.stats.rate).toBe(Number.POSITIVE_INFINITY);
    expect(admitted.some((a) => a.from === '127.0.0.4')).toBe(true);
    // One episode: throttled once, open once, with what waited in it.
    expect(events).toEqual(['throttled at 20', 'open']);
    expect(opened?.waited).toBeGreaterThanOrEqual(1);
    expect(opened?.maxWaitMs).toBeGreaterThan(0);
  });

  it('with a floor of 0 is off: everything goes in as it comes, saturated or not', async () => {
    const { gate, admitted, connect } = await gated(0);
    const stop = await saturated();
    await Promise.all(Array.from({ length: 30 }, () => connect('127.0.0.2')));
    for (let i = 0; i < 100 && admitted.length < 30; i++) await sleep(20);
    stop();
    expect(admitted).toHaveLength(30);
    expect(gate.stats.queuedPeak).toBe(0);
  });

  it('close() closes the connections still waiting', { timeout: 20_000 }, async () => {
    const { gate, connect, clients } = await gated(5);
    const stop = await saturated();
    await Promise.all(Array.from({ length: 10 }, () => connect('127.0.0.2')));
    for (let i = 0; i < 100 && gate.stats.queued < 5; i++) await sleep(20);
    expect(gate.stats.queued).toBeGreaterThanOrEqual(5);
    const closed = clients.map(
      (c) => new Promise<void>((r) => (c.closed ? r() : c.once('close', () => r()))),
    );
    gate.close();
    stop();
    expect(gate.stats.queued).toBe(0);
    // Admitted ones were destroyed by the test's server, waiting ones by close().
    await Promise.all(closed);
  });

  it('in an entry: requests wait unread at the gate, go in at its rate; a drain closes the waiting', {
    timeout: 20_000,
  }, async () => {
    const lines: Array<{ level: number; msg: string; rate?: number }> = [];
    const destination = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line));
        cb();
      },
    });
    const logger = createRootLogger({ name: 'test', level: 'info', destination });
    const plane = peerlessEntryPlane(
      { busyConnectionRate: 2 },
      { exit: { healthChecks: false }, logger },
    );
    const { http } = await plane.start();
    const port = (http as net.AddressInfo).port;
    cleanups.push(() => void plane.destroy());
    const stop = await saturated();
    const answers = Array.from({ length: 8 }, () => {
      const c = net.connect({ port, host: '127.0.0.1' });
      c.on('error', () => {});
      c.write('GET / HTTP/1.1\r\nHost: nowhere.test\r\n\r\n');
      let got = '';
      c.on('data', (d: Buffer) => {
        got += d.toString('latin1');
      });
      return new Promise<string>((r) => c.once('close', () => r(got)));
    });
    const entry = plane.entry as NonNullable<typeof plane.entry>;
    for (let i = 0; i < 150 && (entry.admission?.admitted ?? 0) < 1; i++) await sleep(20);
    expect(entry.admission?.admitted).toBeGreaterThanOrEqual(1);
    expect(entry.admission?.queued).toBeGreaterThanOrEqual(3);
    await plane.close();
    stop();
    const got = await Promise.all(answers);
    const answered = got.filter((g) => g.startsWith('HTTP/1.1 '));
    // Let in: answered (no such origin) and closed by the drain; waiting: closed unanswered.
    expect(answered.length).toBeGreaterThanOrEqual(1);
    expect(got.filter((g) => g === '').length).toBeGreaterThanOrEqual(3);
    expect(answered.length + got.filter((g) => g === '').length).toBe(8);
    // The operator is told, once.
    const warned = lines.filter((l) => l.msg.startsWith('event loop saturated'));
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({ level: 40, rate: 2 });
  });

  it('refuses a busyConnectionRate that is not an integer >= 0', () => {
    for (const busyConnectionRate of [-1, 2.5, Number.NaN]) {
      expect(() => peerlessEntryPlane({ busyConnectionRate })).toThrow(
        expect.objectContaining({ code: 'ERR_CONFIG_INVALID' }),
      );
    }
  });
});
