import type { EventEmitter } from 'node:events';
import net from 'node:net';
import {
  type Dialer,
  type DialOptions,
  type DialTarget,
  DirectDialer,
  isRelayError,
  type RelayError,
} from '@relaymesh/shared';
import { FakeClock } from '@relaymesh/shared/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { PersistentTunnel, type RetryInfo, type Tunnel } from '../../src/index.ts';
import { within } from '../mux/helpers.ts';
import {
  captureLogger,
  expectEcho,
  linesWith,
  makeDialer,
  Resources,
  startListener,
} from './helpers.ts';

const r = new Resources();
afterEach(() => r.closeAll());

function nextEvent<T>(emitter: EventEmitter, event: string, ms = 3000): Promise<T> {
  return within(
    new Promise<T>((resolve) => emitter.once(event, (v: T) => resolve(v))),
    ms,
    `event ${event}`,
  );
}

/** The real direct dialer, counting what goes through it. */
class CountingDialer implements Dialer {
  readonly description = 'counting direct';
  readonly targets: DialTarget[] = [];
  readonly #direct = new DirectDialer();

  dial(target: DialTarget, options?: DialOptions): Promise<net.Socket> {
    this.targets.push(target);
    return this.#direct.dial(target, options);
  }
}

/** Zero jitter, so the delays are exactly 200 ms x 1.6^n. */
const NO_JITTER = { random: () => 0.5 };

describe('PersistentTunnel', () => {
  it('redials through the Dialer with exponential backoff until the listener is back', async () => {
    const first = await startListener(r);
    const port = first.address!.port;
    const counting = new CountingDialer();
    const clock = new FakeClock();
    const pt = r.add(
      new PersistentTunnel({
        dialer: makeDialer({ dialer: counting }),
        url: `ws://127.0.0.1:${port}`,
        clock,
        backoff: NO_JITTER,
      }),
      (p) => p.destroy(),
    );
    const up1 = await nextEvent<Tunnel>(pt, 'up');
    expect(pt.state).toBe('up');
    expect(pt.current).toBe(up1);
    expect(counting.targets).toEqual([{ host: '127.0.0.1', port }]);

    // The listener goes away: the tunnel goes down, every redial is refused.
    const down = nextEvent<Error | undefined>(pt, 'down');
    let retry = nextEvent<RetryInfo>(pt, 'retry');
    first.destroy();
    expect(isRelayError(await down)).toBe(true);
    expect(pt.current).toBeUndefined();
    const seen: RetryInfo[] = [await retry];
    for (let i = 0; i < 3; i++) {
      retry = nextEvent<RetryInfo>(pt, 'retry');
      clock.advance(seen.at(-1)!.delayMs);
      seen.push(await retry);
    }
    expect(seen.map((s) => s.delayMs)).toEqual([200, 320, 512, 819]);
    expect(seen.map((s) => s.attempt)).toEqual([1, 2, 3, 4]);
    expect(seen.slice(1).map((s) => (s.err as RelayError).code)).toEqual([
      'ERR_DIAL_REFUSED',
      'ERR_DIAL_REFUSED',
      'ERR_DIAL_REFUSED',
    ]);
    expect(pt.state).toBe('waiting');
    // Nothing is dialed before the delay has passed.
    clock.advance(818);
    await new Promise((res) => setTimeout(res, 20));
    expect(counting.targets).toHaveLength(4);

    // Back on the same port: the next attempt succeeds and the backoff starts over.
    const second = await startListener(r, { port });
    const up2 = nextEvent<Tunnel>(pt, 'up');
    clock.advance(1);
    const t2 = await up2;
    expect(counting.targets).toHaveLength(5);
    await expectEcho(t2, second.tunnels.get('dialer-1')!);

    retry = nextEvent<RetryInfo>(pt, 'retry');
    second.tunnels.get('dialer-1')!.destroy();
    expect(await retry).toMatchObject({ attempt: 1, delayMs: 200 });
  });

  it('a wrong token is not retried fast: one error line, at least 60 s', async () => {
    const listener = await startListener(r);
    const counting = new CountingDialer();
    const clock = new FakeClock();
    const cap = captureLogger();
    const pt = r.add(
      new PersistentTunnel({
        dialer: makeDialer({ dialer: counting, token: 'a-stale-token-from-last-year-000000' }),
        url: listener.url,
        clock,
        backoff: NO_JITTER,
        logger: cap.logger,
      }),
      (p) => p.destroy(),
    );
    const retry = await nextEvent<RetryInfo>(pt, 'retry');
    expect((retry.err as RelayError).code).toBe('ERR_AUTH_FAILED');
    expect(retry.delayMs).toBe(60_000);
    const errors = cap.lines.filter((l) => l.level === 50);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ code: 'ERR_AUTH_FAILED', delayMs: 60_000 });
    expect(JSON.stringify(cap.lines)).not.toContain('a-stale-token');
    clock.advance(59_999);
    await new Promise((res) => setTimeout(res, 20));
    expect(counting.targets).toHaveLength(1);
    const again = nextEvent<RetryInfo>(pt, 'retry');
    clock.advance(1);
    expect((await again).attempt).toBe(2);
    expect(counting.targets).toHaveLength(2);
  });

  it('close() stops reconnecting and closes the tunnel cleanly on both ends', async () => {
    const listener = await startListener(r);
    const counting = new CountingDialer();
    const clock = new FakeClock();
    const pt = new PersistentTunnel({
      dialer: makeDialer({ dialer: counting }),
      url: listener.url,
      clock,
    });
    const t = await nextEvent<Tunnel>(pt, 'up');
    const serverSide = listener.tunnels.get('dialer-1')!;
    let retries = 0;
    pt.on('retry', () => retries++);
    await within(pt.close(), 3000, 'close');
    expect(pt.state).toBe('closed');
    expect(await within(t.closed, 3000, 'client closed')).toBeUndefined();
    expect(await within(serverSide.closed, 3000, 'server closed')).toBeUndefined();
    clock.advance(120_000);
    await new Promise((res) => setTimeout(res, 20));
    expect(retries).toBe(0);
    expect(counting.targets).toHaveLength(1);
    await pt.close(); // idempotent
    pt.destroy();
  });

  it('a silent peer is found by the mux keepalive; the tunnel comes back when it answers', async () => {
    const listener = await startListener(r);
    const freezer = await freezableProxy(listener.address!.port);
    r.add(freezer, (f) => f.close());
    const clock = new FakeClock();
    const cap = captureLogger();
    const pt = r.add(
      new PersistentTunnel({
        dialer: makeDialer({
          logger: cap.logger,
          mux: { keepAliveIntervalMs: 50, deadTimeoutMs: 300, pingTimeoutMs: 300 },
        }),
        url: `ws://127.0.0.1:${freezer.port}`,
        clock,
        backoff: NO_JITTER,
      }),
      (p) => p.destroy(),
    );
    const first = await nextEvent<Tunnel>(pt, 'up');
    const down = nextEvent<Error | undefined>(pt, 'down', 5000);
    const retry = nextEvent<RetryInfo>(pt, 'retry', 5000);
    freezer.frozen = true; // packets vanish, no FIN, no RST
    const err = await down;
    expect((err as RelayError).code).toBe('ERR_MUX_KEEPALIVE_TIMEOUT');
    expect(first.isClosed).toBe(true);
    expect((await retry).delayMs).toBe(200);
    expect(linesWith(cap.lines, 'tunnel down')).toHaveLength(1);
    expect(linesWith(cap.lines, 'tunnel down')[0]).toMatchObject({
      code: 'ERR_MUX_KEEPALIVE_TIMEOUT',
      peerNodeId: 'listener-1',
    });

    freezer.frozen = false;
    const up = nextEvent<Tunnel>(pt, 'up');
    clock.advance(200);
    const second = await up;
    expect(second).not.toBe(first);
    // The listener had not noticed yet; the new tunnel replaced the old one.
    expect(listener.tunnels.get('dialer-1')).toBeDefined();
    await expectEcho(second, listener.tunnels.get('dialer-1')!);
  });
});

/** A TCP relay that can drop everything in both directions without closing anything. */
async function freezableProxy(
  targetPort: number,
): Promise<{ port: number; frozen: boolean; close(): void }> {
  const sockets = new Set<net.Socket>();
  const state = { frozen: false };
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    for (const [from, to] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      sockets.add(from);
      from.on('error', () => {});
      from.on('close', () => to.destroy());
      from.on('data', (d: Buffer) => {
        if (!state.frozen) to.write(d);
      });
    }
  });
  server.listen(0, '127.0.0.1');
  await new Promise((res) => server.once('listening', res));
  return {
    port: (server.address() as net.AddressInfo).port,
    get frozen() {
      return state.frozen;
    },
    set frozen(v: boolean) {
      state.frozen = v;
    },
    close() {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}
