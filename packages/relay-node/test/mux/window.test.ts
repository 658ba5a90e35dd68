import { isRelayError } from '@relaymesh/shared';
import { FakeClock } from '@relaymesh/shared/testing';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CreditBudget,
  createMemoryPair,
  type MuxStream,
  resolveMuxConfig,
  Session,
  StreamTransport,
} from '../../src/index.ts';
import { ReceiveWindow, RTT_WINDOW_SAMPLES, RttEstimator } from '../../src/mux/window.ts';
import { digest, nextStream, random, sha256, streamError, until, writeAll } from './helpers.ts';

const KiB = 1024;
const MiB = 1024 * 1024;

function window(opts: { srtt?: number; budget?: CreditBudget; max?: number } = {}) {
  let now = 0;
  const w = new ReceiveWindow({
    initial: 256 * KiB,
    max: opts.max ?? 16 * MiB,
    budget: opts.budget ?? new CreditBudget(1024 * MiB),
    now: () => now,
    srtt: () => opts.srtt,
    minRtt: () => undefined,
    queueBudgetMs: 2,
  });
  return { w, advance: (ms: number) => (now += ms) };
}

describe('ReceiveWindow', () => {
  it('returns credit once half the window is consumed, not before', () => {
    const { w, advance } = window();
    expect(w.receive(256 * KiB)).toBe(true);
    expect(w.receive(1)).toBe(false);
    advance(1000);
    expect(w.consume(128 * KiB - 1)).toBe(0);
    expect(w.consume(1)).toBe(128 * KiB);
    expect(w.credit).toBe(128 * KiB);
    expect(w.size).toBe(256 * KiB);
  });

  it('doubles when half the window went in under 2·SRTT', () => {
    const { w, advance } = window({ srtt: 100 });
    w.receive(128 * KiB);
    advance(150);
    expect(w.consume(128 * KiB)).toBe(128 * KiB + 256 * KiB);
    expect(w.size).toBe(512 * KiB);
  });

  it('does not grow when consumption is slower than 2·SRTT, or without an RTT', () => {
    const slow = window({ srtt: 100 });
    slow.advance(250);
    expect(slow.w.consume(128 * KiB)).toBe(128 * KiB);
    expect(slow.w.size).toBe(256 * KiB);
    const noRtt = window();
    expect(noRtt.w.consume(128 * KiB)).toBe(128 * KiB);
    expect(noRtt.w.size).toBe(256 * KiB);
  });

  it('stops at the max window', () => {
    const { w } = window({ srtt: 100, max: 1 * MiB });
    for (let i = 0; i < 10; i++) w.consume(w.size / 2);
    expect(w.size).toBe(1 * MiB);
  });

  it('stops growing when the budget is exhausted', () => {
    const budget = new CreditBudget(512 * KiB);
    budget.tryReserve(256 * KiB); // the initial window
    const { w } = window({ srtt: 100, budget });
    w.consume(128 * KiB);
    expect(w.size).toBe(512 * KiB);
    w.consume(256 * KiB);
    expect(w.size).toBe(512 * KiB);
    expect(budget.used).toBe(512 * KiB);
  });
});

describe('RttEstimator', () => {
  it('keeps the least of the last RTT_WINDOW_SAMPLES samples, apart from SRTT', () => {
    const r = new RttEstimator();
    expect(r.windowMin).toBeUndefined();
    // A 100 ms path whose samples jitter upwards: SRTT sits above the base, the window
    // minimum on it.
    for (const s of [104, 100, 112, 103, 125, 101]) r.add(s, 0);
    expect(r.windowMin).toBe(100);
    expect(r.srtt!).toBeGreaterThan(103);
    // The path gets slower (200 ms): the old base leaves the window after
    // RTT_WINDOW_SAMPLES samples, and the windowed minimum follows; the all-time min does not.
    for (let i = 0; i < RTT_WINDOW_SAMPLES - 1; i++) r.add(200 + i, 0);
    expect(r.windowMin).toBe(101);
    r.add(230, 0);
    expect(r.windowMin).toBe(200);
    expect(r.min).toBe(100);
    // Faster again: at once.
    r.add(90, 0);
    expect(r.windowMin).toBe(90);
    expect(r.samples).toBe(6 + RTT_WINDOW_SAMPLES + 1);
  });
});

describe('RttEstimator.windowJitter', () => {
  it('is the mean excess of the window over its least sample, and forgets a queue in 6 samples', () => {
    const r = new RttEstimator();
    expect(r.windowJitter).toBeUndefined();
    for (const s of [52, 54, 53, 56, 52, 57]) r.add(s, 0);
    expect(r.windowJitter).toBeCloseTo(54 - 52, 9);
    // PINGs queue behind downloads on a link whose bandwidth fell: seconds of delay.
    for (const s of [400, 1200, 2500, 4000, 4500]) r.add(s, 0);
    expect(r.windowJitter).toBeGreaterThan(2000);
    // The link heals, the queue drains: the samples are the base RTT again.
    for (let i = 0; i < RTT_WINDOW_SAMPLES; i++) r.add(52 + (i % 2), 0);
    expect(r.windowJitter).toBeCloseTo(0.5, 9);
    // RFC 6298's rttvar, measured against an SRTT still coming down from seconds, does
    // not: it would be charged as jitter for another ~15 s.
    expect(r.rttvar!).toBeGreaterThan(500);
  });
});

describe('RttEstimator: a fall restarts the window', () => {
  it('drops the old level once 3 samples are all faster than every older one', () => {
    const r = new RttEstimator();
    // A degraded link (100 ms) heals to 50 ms.
    for (const s of [100, 102, 101, 100, 103, 100]) r.add(s, 0);
    r.add(50, 0);
    // The base follows at once; the old level still counts as an excess over it.
    expect(r.windowMin).toBe(50);
    expect(r.windowJitter).toBeCloseTo((102 + 101 + 100 + 103 + 100 + 50) / 6 - 50, 9);
    r.add(51, 0);
    expect(r.windowJitter).toBeGreaterThan(30);
    // The third fast sample: the window holds the new level only.
    r.add(50, 0);
    expect(r.windowJitter).toBeCloseTo(1 / 3, 9);
    expect(r.windowMin).toBe(50);
    // It refills to RTT_WINDOW_SAMPLES as before.
    for (const s of [52, 50, 51, 60]) r.add(s, 0);
    expect(r.windowJitter).toBeCloseTo((51 + 50 + 52 + 50 + 51 + 60) / 6 - 50, 9);
  });

  it('keeps the window through falls under max(10 ms, 20 %), a single fast sample and any rise', () => {
    const fill = (r: RttEstimator, xs: number[]) => {
      for (const s of xs) r.add(s, 0);
      return r;
    };
    // 100 -> 85: 15 ms but 15 %; the old level stays in the jitter for the full window.
    expect(fill(new RttEstimator(), [100, 100, 100, 85, 85, 85]).windowJitter).toBeCloseTo(7.5, 9);
    // 40 -> 31: 22 % but 9 ms.
    expect(fill(new RttEstimator(), [40, 40, 40, 31, 31, 31]).windowJitter).toBeCloseTo(4.5, 9);
    // One fast sample among slow ones (the newest 3 are not all faster).
    const one = fill(new RttEstimator(), [100, 100, 100, 50, 100, 50]);
    expect(one.windowJitter).toBeCloseTo(500 / 6 - 50, 9);
    // A rise (50 -> 100) is followed only once every sample of the window is slower.
    const up = fill(new RttEstimator(), [50, 50, 50, 100, 100, 100]);
    expect(up.windowMin).toBe(50);
    expect(fill(up, [100, 100]).windowMin).toBe(50);
    expect(fill(up, [100]).windowMin).toBe(100);
  });
});

describe('CreditBudget', () => {
  it('charges parents and is all-or-nothing', () => {
    const process = new CreditBudget(1000);
    const a = new CreditBudget(800, process);
    const b = new CreditBudget(800, process);
    expect(a.tryReserve(600)).toBe(true);
    expect(b.tryReserve(600)).toBe(false);
    expect(b.tryReserve(400)).toBe(true);
    expect(process.used).toBe(1000);
    a.release(600);
    expect(process.used).toBe(400);
    expect(b.available).toBe(400);
  });
});

describe('session flow control with an injected clock', () => {
  const sessions: Session[] = [];
  afterEach(() => {
    for (const s of sessions.splice(0)) s.destroy();
  });

  function pair(clock: FakeClock, serverBudget?: CreditBudget) {
    const [a, b] = createMemoryPair();
    const client = new Session({ transport: new StreamTransport(a), role: 'client', clock });
    const server = new Session({
      transport: new StreamTransport(b),
      role: 'server',
      clock,
      ...(serverBudget ? { creditBudget: serverBudget } : {}),
    });
    sessions.push(client, server);
    return { client, server };
  }

  it('auto-tunes a fast stream up from 256 KiB, data intact', async () => {
    const clock = new FakeClock();
    const { client, server } = pair(clock);
    clock.advance(50); // SRTT = 50 ms once the start-up pings are answered
    await until(() => server.rttStats.samples === 1);
    const inbound = nextStream(server);
    const s = client.open();
    s.on('error', () => {});
    const data = random(8 * MiB);
    const ss = await inbound;
    const [got] = await Promise.all([digest(ss), writeAll(s, data)]);
    expect(got.sha256).toBe(sha256(data));
    // Frozen clock: every epoch took 0 ms < 2·SRTT, so each update doubled the window.
    expect(ss.receiveWindow).toBeGreaterThanOrEqual(4 * MiB);
    expect(ss.receiveWindow).toBeLessThanOrEqual(16 * MiB);
  });

  it('does not grow windows of a slow reader', async () => {
    const clock = new FakeClock();
    const { client, server } = pair(clock);
    clock.advance(10);
    await until(() => server.rttStats.samples === 1);
    const inbound = nextStream(server);
    const s = client.open();
    s.on('error', () => {});
    const data = random(2 * MiB);
    const ss = await inbound;
    const writing = writeAll(s, data);
    let got = 0;
    clock.advance(100);
    for await (const chunk of ss) {
      got += (chunk as Buffer).length;
      clock.advance(100); // far slower than 2·SRTT per half window
    }
    await writing;
    expect(got).toBe(data.length);
    expect(ss.receiveWindow).toBe(256 * KiB);
  });

  it('refuses inbound streams with MEMORY_LIMIT when the budget is exhausted', async () => {
    const clock = new FakeClock();
    const budget = new CreditBudget(600 * KiB);
    const { client, server } = pair(clock, budget);
    const taken: MuxStream[] = [];
    server.on('stream', (st: MuxStream) => {
      st.on('error', () => {});
      taken.push(st);
    });
    const streams = [client.open(), client.open(), client.open()];
    for (const st of streams.slice(0, 2)) st.on('error', () => {});
    const err = await streamError(streams[2]!);
    expect(isRelayError(err, 'ERR_MUX_MEMORY_LIMIT')).toBe(true);
    await until(() => taken.length === 2);
    expect(budget.used).toBe(512 * KiB);
    // Locally, the server cannot open either.
    expect(() => server.open()).toThrow(expect.objectContaining({ code: 'ERR_MUX_MEMORY_LIMIT' }));
    // Closing a stream gives its credit back.
    taken[0]!.reset();
    expect(budget.used).toBe(256 * KiB);
  });

  it('releases every reservation when the session ends', async () => {
    const clock = new FakeClock();
    const budget = new CreditBudget(64 * MiB);
    const { client, server } = pair(clock, budget);
    server.on('stream', (st: MuxStream) => st.on('error', () => {}));
    for (let i = 0; i < 5; i++) client.open().on('error', () => {});
    await until(() => budget.used === 5 * 256 * KiB);
    server.destroy();
    expect(budget.used).toBe(0);
  });
});

describe('resolveMuxConfig', () => {
  it('fills defaults', () => {
    expect(resolveMuxConfig()).toMatchObject({
      initialStreamWindow: 256 * KiB,
      maxStreamWindow: 16 * MiB,
      acceptBacklog: 256,
      keepAliveIntervalMs: 500,
      deadTimeoutMs: 3000,
    });
  });

  it.each([
    [{ initialStreamWindow: 1000 }, 'initialStreamWindow'],
    [{ dataFrameSize: 100_000 }, 'dataFrameSize'],
    [{ maxConcurrentStreams: 1.5 }, 'maxConcurrentStreams'],
    [{ maxStreamWindow: 300 * KiB, initialStreamWindow: 400 * KiB }, 'maxStreamWindow'],
    [{ keepAliveIntervalMs: 20_000 }, 'deadTimeoutMs'],
    [{ bogus: 1 } as never, 'bogus'],
  ])('rejects %o naming %s', (partial, field) => {
    try {
      resolveMuxConfig(partial);
      expect.unreachable();
    } catch (err) {
      expect(isRelayError(err, 'ERR_CONFIG_INVALID')).toBe(true);
      expect((err as { details: { field: string } }).details.field).toBe(field);
    }
  });
});

describe('auto-tuning on a link with latency (real clock)', () => {
  it('grows a bulk stream window past 4 MiB on a 40 ms RTT link, data intact', async () => {
    const [a, b] = createMemoryPair({ latencyMs: 20, inFlightBytes: 64 * MiB });
    const client = new Session({ transport: new StreamTransport(a), role: 'client' });
    const server = new Session({ transport: new StreamTransport(b), role: 'server' });
    try {
      await until(() => server.rttStats.samples >= 1, 3000, 'first RTT sample');
      // 2 × 20 ms, minus libuv's cached loop time (timers may fire a little early).
      expect(server.rttStats.srttMs).toBeGreaterThan(30);
      const inbound = nextStream(server);
      const s = client.open();
      s.on('error', () => {});
      const data = random(24 * MiB);
      const ss = await inbound;
      ss.on('error', () => {});
      const [got] = await Promise.all([digest(ss, 15_000), writeAll(s, data)]);
      expect(got.sha256).toBe(sha256(data));
      // A fixed 256 KiB window would cap this at 256 KiB per RTT; the rule scaled by the
      // consumed fraction (not go-yamux's fixed 4·RTT, see research/transport.md §1.5)
      // keeps doubling while the window is the bottleneck.
      expect(ss.receiveWindow).toBeGreaterThanOrEqual(4 * MiB);
    } finally {
      client.destroy();
      server.destroy();
    }
  });
});
