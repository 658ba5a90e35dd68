import net from 'node:net';
import { type Dialer, type DialOptions, type DialTarget, DirectDialer } from '@relaymesh/shared';
import { FakeClock } from '@relaymesh/shared/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { OriginProber } from '../../src/control/index.ts';
import { captureLogger } from './helpers.ts';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

/** The real dialer, counting what goes through it. */
class CountingDialer implements Dialer {
  readonly description = 'counting';
  readonly targets: DialTarget[] = [];
  readonly #inner = new DirectDialer();
  dial(target: DialTarget, options?: DialOptions): Promise<net.Socket> {
    this.targets.push(target);
    return this.#inner.dial(target, options);
  }
}

async function listen(): Promise<{ port: number; accepted: () => number }> {
  let accepted = 0;
  const server = net.createServer((s) => {
    accepted++;
    s.destroy();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise((r) => server.close(r)));
  return { port: (server.address() as net.AddressInfo).port, accepted: () => accepted };
}

async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

describe('OriginProber', () => {
  it('measures connect RTT to each upstream through the dialer; a refused one is unreachable', async () => {
    const up = await listen();
    const down = await closedPort();
    const dialer = new CountingDialer();
    const prober = new OriginProber({ dialer, timeoutMs: 2000 });
    cleanups.push(() => prober.destroy());
    prober.setOrigins([
      { name: 'files', upstreams: [`http://127.0.0.1:${up.port}`, `tcp://127.0.0.1:${down}`] },
    ]);
    await prober.probeOnce();
    const byUpstream = new Map(prober.origins().map((m) => [m.upstream, m]));
    const ok = byUpstream.get(`http://127.0.0.1:${up.port}`)!;
    expect(ok.reachable).toBe(true);
    expect(ok.rttMs).toBeGreaterThan(0);
    expect(byUpstream.get(`tcp://127.0.0.1:${down}`)!.reachable).toBe(false);
    expect(dialer.targets).toEqual([
      { host: '127.0.0.1', port: up.port },
      { host: '127.0.0.1', port: down },
    ]);
    await new Promise((r) => setTimeout(r, 20));
    expect(up.accepted()).toBe(1);
  });

  it('gives up after timeoutMs even when the dialer hangs, and frees the late socket', async () => {
    const up = await listen();
    const clock = new FakeClock();
    let signal: AbortSignal | undefined;
    let finish: (s: net.Socket) => void = () => {};
    const hanging: Dialer = {
      description: 'hanging',
      dial: (_t, o) => {
        signal = o?.signal;
        return new Promise((resolve) => {
          finish = resolve;
        });
      },
    };
    const prober = new OriginProber({ dialer: hanging, timeoutMs: 500, clock });
    cleanups.push(() => prober.destroy());
    prober.setOrigins([{ name: 'slow', upstreams: ['tcp://127.0.0.1:1'] }]);
    const round = prober.probeOnce();
    await Promise.resolve();
    clock.advance(499);
    expect(prober.origins()).toEqual([]);
    clock.advance(1);
    await round;
    expect(prober.origins()).toEqual([
      { origin: 'slow', upstream: 'tcp://127.0.0.1:1', rttMs: 0, reachable: false },
    ]);
    expect(signal?.aborted).toBe(true);
    // The dialer ignored the abort and connects late: the prober must close that socket.
    const late = net.connect(up.port, '127.0.0.1');
    cleanups.push(() => late.destroy());
    await new Promise((r) => late.once('connect', r));
    finish(late);
    await new Promise((r) => setTimeout(r, 10));
    expect(late.destroyed).toBe(true);
  });

  it('runs rounds on its interval and forgets origins that are removed', async () => {
    const up = await listen();
    const clock = new FakeClock();
    const dialer = new CountingDialer();
    const prober = new OriginProber({ dialer, intervalMs: 5000, clock });
    cleanups.push(() => prober.close());
    prober.setOrigins([{ name: 'a', upstreams: [`tcp://127.0.0.1:${up.port}`] }]);
    prober.start();
    clock.advance(0);
    const deadline = Date.now() + 5000;
    while (prober.origins().length === 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 10));
    expect(dialer.targets).toHaveLength(1);
    clock.advance(4999);
    await new Promise((r) => setTimeout(r, 30));
    expect(dialer.targets).toHaveLength(1);
    clock.advance(1);
    while (dialer.targets.length < 2 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 10));
    expect(dialer.targets).toHaveLength(2);
    prober.setOrigins([]);
    expect(prober.origins()).toEqual([]);
  });

  it('says when an upstream becomes unreachable and when it is back, once each, not every round', async () => {
    // Info and up: each failed probe also logs at debug.
    const { logger, lines: all } = captureLogger();
    const lines = { get: () => all.filter((l) => (l.level as number) >= 30) };
    // A port that refuses, then listens, then refuses again.
    const port = await closedPort();
    const prober = new OriginProber({ dialer: new DirectDialer(), timeoutMs: 2000, logger });
    cleanups.push(() => prober.destroy());
    prober.setOrigins([{ name: 'files', upstreams: [`tcp://127.0.0.1:${port}`] }]);
    const messages = async () => {
      await new Promise((r) => setImmediate(r));
      return lines.get().map((l) => l.msg);
    };
    await prober.probeOnce();
    await prober.probeOnce();
    expect(await messages()).toEqual(['origin upstream unreachable from this node']);
    expect(lines.get()[0]).toMatchObject({
      level: 40,
      origin: 'files',
      upstream: `tcp://127.0.0.1:${port}`,
      err: { code: 'ERR_DIAL_REFUSED' },
    });
    const server = net.createServer((c) => c.destroy());
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    await prober.probeOnce();
    await prober.probeOnce();
    expect(prober.origins()[0]?.reachable).toBe(true);
    expect(await messages()).toEqual([
      'origin upstream unreachable from this node',
      'origin upstream reachable again',
    ]);
    await new Promise((r) => server.close(r));
    await prober.probeOnce();
    expect(await messages()).toHaveLength(3);
    expect(lines.get()[2]?.msg).toBe('origin upstream unreachable from this node');
  });
});
