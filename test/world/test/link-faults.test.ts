import { once } from 'node:events';
import type net from 'node:net';
import { HttpConnectDialer } from '@relaymesh/shared';
import { afterEach, describe, expect, it } from 'vitest';
import { type EgressProxy, type LinkSpec, NO_JITTER, startEgressProxy } from '../src/index.ts';
import { median, pingMs, Resources, sleep } from './helpers.ts';

const res = new Resources();
afterEach(() => res.closeAll());

async function proxyAB(profile: Omit<LinkSpec, 'from' | 'to'>, port: number): Promise<EgressProxy> {
  const proxy = await startEgressProxy({
    regions: ['a'],
    links: [
      { from: 'a', to: 'b', ...profile },
      { from: 'b', to: 'a', ...profile },
    ],
    endpoints: [{ host: '127.0.0.1', port, region: 'b' }],
  });
  res.closers.push(() => proxy.close());
  return proxy;
}

async function dialVia(proxy: EgressProxy, port: number): Promise<net.Socket> {
  const dialer = new HttpConnectDialer(proxy.urlFor('a'), { timeoutMs: 5000 });
  return res.socket(await dialer.dial({ host: '127.0.0.1', port }));
}

/** Posts a fault through the proxy's control API, as the world runner does. */
async function control(proxy: EgressProxy, body: object): Promise<number> {
  const r = await fetch(`http://127.0.0.1:${proxy.controlPort}/links/a/b`, {
    method: 'POST',
    body: JSON.stringify(body),
  });
  await r.body?.cancel();
  return r.status;
}

/** Sends `bytes` through an echo and waits for all of them to come back; returns ms. */
async function echoBulk(s: net.Socket, bytes: number): Promise<number> {
  const started = performance.now();
  let got = 0;
  const done = new Promise<void>((resolve) => {
    const onData = (d: Buffer) => {
      got += d.length;
      if (got >= bytes) {
        s.off('data', onData);
        resolve();
      }
    };
    s.on('data', onData);
  });
  s.write(Buffer.alloc(bytes));
  await Promise.race([done, sleep(5000)]);
  return performance.now() - started;
}

describe('faults on a live connection', () => {
  it('blackhole holds bytes without closing; heal delivers them in order', async () => {
    const echo = await res.listen((s) => s.pipe(s));
    const proxy = await proxyAB({ rttMs: 20, bandwidthBps: 100e6, jitter: NO_JITTER }, echo);
    const s = await dialVia(proxy, echo);
    expect(await pingMs(s)).toBeLessThan(200);

    expect(await control(proxy, { fault: 'blackhole' })).toBe(200);
    const got: Buffer[] = [];
    s.on('data', (d: Buffer) => got.push(d));
    s.write('one');
    s.write('two');
    await sleep(300);
    expect(got).toHaveLength(0);
    expect(s.destroyed).toBe(false);
    expect(proxy.linkStats().every((l) => l.blackholed)).toBe(true);

    expect(await control(proxy, { fault: 'heal' })).toBe(200);
    await sleep(150);
    expect(Buffer.concat(got).toString()).toBe('onetwo');
  });

  it('blackhole holds new connection set-up until heal', async () => {
    const echo = await res.listen((s) => s.pipe(s));
    const proxy = await proxyAB({ rttMs: 10, bandwidthBps: 100e6, jitter: NO_JITTER }, echo);
    await control(proxy, { fault: 'blackhole' });
    let connected = false;
    const pending = dialVia(proxy, echo).then((s) => {
      connected = true;
      return s;
    });
    await sleep(200);
    expect(connected).toBe(false);
    await control(proxy, { fault: 'heal' });
    const s = await pending;
    expect(await pingMs(s)).toBeLessThan(200);
  });

  it('degrade changes delay and bandwidth for live connections; heal restores them', async () => {
    const echo = await res.listen((s) => s.pipe(s));
    const proxy = await proxyAB({ rttMs: 20, bandwidthBps: 100e6, jitter: NO_JITTER }, echo);
    const s = await dialVia(proxy, echo);
    const before = median([await pingMs(s), await pingMs(s), await pingMs(s)]);
    expect(await control(proxy, { fault: 'degrade', rttMs: 200, bandwidthBps: 4e6 })).toBe(200);
    const degraded = median([await pingMs(s), await pingMs(s), await pingMs(s)]);
    expect(proxy.linkStats()[0]?.profile.bandwidthBps).toBe(4e6);
    // 200 kB each way at 4 Mbit/s: at least 0.4 s however the two directions overlap.
    const bulkMs = await echoBulk(s, 200_000);
    await control(proxy, { fault: 'heal' });
    const after = median([await pingMs(s), await pingMs(s), await pingMs(s)]);
    expect(before).toBeLessThan(60);
    expect(degraded).toBeGreaterThan(180);
    expect(bulkMs).toBeGreaterThan(400 * 0.9);
    expect(bulkMs).toBeLessThan(3000);
    expect(after).toBeLessThan(60);
    expect(await echoBulk(s, 200_000)).toBeLessThan(200);
  });

  it('reset kills live connections on both sides; new ones still work', async () => {
    const serverSide: net.Socket[] = [];
    const echo = await res.listen((s) => {
      serverSide.push(s);
      s.pipe(s);
    });
    const proxy = await proxyAB({ rttMs: 10, bandwidthBps: 100e6, jitter: NO_JITTER }, echo);
    const s = await dialVia(proxy, echo);
    await pingMs(s);
    // Not events.once: it rejects on the 'error' (ECONNRESET) that comes first.
    const closed = (x: net.Socket) => new Promise((r) => x.once('close', r));
    const clientClosed = closed(s);
    const serverClosed = closed(serverSide[0]!);
    const r = await fetch(`http://127.0.0.1:${proxy.controlPort}/links/b/a`, {
      method: 'POST',
      body: '{"fault":"reset"}',
    });
    expect(await r.json()).toEqual({ directions: 2, connections: 1 });
    await Promise.all([clientClosed, serverClosed]);
    const again = await dialVia(proxy, echo);
    expect(await pingMs(again)).toBeLessThan(200);
  });

  it('refuses a configuration without links for a served region or with a bad profile', async () => {
    const bad = [
      {
        regions: ['a'],
        links: [{ from: 'b', to: 'a', rttMs: 1, bandwidthBps: 1e6, jitter: NO_JITTER }],
      },
      {
        regions: ['a'],
        links: [{ from: 'a', to: 'a', rttMs: 1, bandwidthBps: 0, jitter: NO_JITTER }],
      },
    ];
    for (const options of bad) {
      await expect(startEgressProxy(options)).rejects.toMatchObject({ code: 'ERR_WORLD_CONFIG' });
    }
  });

  it('answers 404 for links it does not carry and 400 for unknown faults', async () => {
    const echo = await res.listen((s) => s.pipe(s));
    const proxy = await proxyAB({ rttMs: 0, bandwidthBps: 1e9, jitter: NO_JITTER }, echo);
    const post = (path: string, body: string) =>
      fetch(`http://127.0.0.1:${proxy.controlPort}${path}`, { method: 'POST', body }).then(
        async (r) => {
          await r.body?.cancel();
          return r.status;
        },
      );
    expect(await post('/links/x/y', '{"fault":"heal"}')).toBe(404);
    expect(await post('/links/a/b', '{"fault":"explode"}')).toBe(400);
    expect(await post('/links/a/b', 'not json')).toBe(400);
  });
});

describe('link sharing and ordering', () => {
  // Retried like the accuracy tests: contention only lowers throughput, one-sidedly.
  it('connections in one direction share its bandwidth', { retry: 2 }, async () => {
    const windowMs = 2000;
    let received = 0;
    let firstAt = 0;
    const sink = await res.listen((s) =>
      s.on('data', (d: Buffer) => {
        const now = performance.now();
        if (firstAt === 0) firstAt = now;
        if (now - firstAt <= windowMs) received += d.length;
      }),
    );
    const proxy = await proxyAB({ rttMs: 20, bandwidthBps: 8e6, jitter: NO_JITTER }, sink);
    const conns = [await dialVia(proxy, sink), await dialVia(proxy, sink)];
    const block = Buffer.alloc(32 * 1024);
    const stopAt = performance.now() + windowMs + 300;
    await Promise.all(
      conns.map(async (s) => {
        while (performance.now() < stopAt) {
          if (s.write(block)) continue;
          // Wait for 'drain' or 100 ms, and drop the listeners either way (one per wait).
          const ac = new AbortController();
          await Promise.race([once(s, 'drain', { signal: ac.signal }).catch(() => {}), sleep(100)]);
          ac.abort();
        }
      }),
    );
    const mbps = (received * 8) / (windowMs / 1000) / 1e6;
    // Per-connection shaping would give 16 Mbit/s here.
    expect(mbps).toBeGreaterThan(8 * 0.85);
    expect(mbps).toBeLessThan(8 * 1.15);
  });

  it('heavy jitter never reorders bytes', async () => {
    const chunks: Buffer[] = [];
    const count = 2000;
    let total = 0;
    let allArrived: () => void = () => {};
    const arrived = new Promise<void>((r) => {
      allArrived = r;
    });
    const sink = await res.listen((s) =>
      s.on('data', (d: Buffer) => {
        chunks.push(d);
        total += d.length;
        if (total >= count * 4) allArrived();
      }),
    );
    const jitter = { kind: 'lognormal', medianMs: 3, sigma: 1.5 } as const;
    const proxy = await proxyAB({ rttMs: 10, bandwidthBps: 50e6, jitter }, sink);
    const s = await dialVia(proxy, sink);
    for (let i = 0; i < count; i++) {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(i);
      s.write(b);
      // Spread the writes so they become many separately jittered chunks.
      if (i % 100 === 0) await sleep(2);
    }
    await Promise.race([arrived, sleep(5000)]);
    const all = Buffer.concat(chunks);
    expect(all.length).toBe(count * 4);
    for (let i = 0; i < count; i++) expect(all.readUInt32BE(i * 4)).toBe(i);
  });
});

describe('stream semantics through the link', () => {
  it('carries a half-close: data after our FIN still comes back, then the FIN', async () => {
    const echo = await res.listen((s) => s.pipe(s));
    const proxy = await proxyAB({ rttMs: 20, bandwidthBps: 50e6, jitter: NO_JITTER }, echo);
    const s = await dialVia(proxy, echo);
    const parts: Buffer[] = [];
    s.on('data', (d: Buffer) => parts.push(d));
    const ended = new Promise((r) => s.once('end', r));
    s.end(Buffer.alloc(200_000, 1));
    await ended;
    expect(Buffer.concat(parts).length).toBe(200_000);
  });

  it('a destination that stops reading stops the proxy reading the client (bounded memory)', async () => {
    const held: net.Socket[] = [];
    const stuck = await res.listen((s) => {
      held.push(s);
      s.pause();
    });
    const proxy = await proxyAB({ rttMs: 10, bandwidthBps: 1e9, jitter: NO_JITTER }, stuck);
    const s = await dialVia(proxy, stuck);
    const block = Buffer.alloc(64 * 1024);
    let accepted = 0;
    const deadline = performance.now() + 1500;
    // Write until the socket pushes back for good (no drain within 300 ms).
    while (performance.now() < deadline) {
      accepted += block.length;
      if (!s.write(block)) {
        const drained = await Promise.race([
          once(s, 'drain').then(() => true),
          sleep(300).then(() => false),
        ]);
        if (!drained) break;
      }
    }
    expect(performance.now()).toBeLessThan(deadline);
    // Kernel buffers on both loopback hops plus the link's in-flight bound: megabytes, not unbounded.
    expect(accepted).toBeLessThan(48 * 1024 * 1024);
    const link = proxy.linkStats().find((l) => l.from === 'a');
    expect(link?.inflightBytes).toBeLessThanOrEqual((link?.inflightLimitBytes ?? 0) + 64 * 1024);
  });
});
