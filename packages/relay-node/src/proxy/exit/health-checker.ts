import {
  type Clock,
  type Dialer,
  F,
  type Logger,
  silentLogger,
  systemClock,
  type TimerHandle,
} from '@relaymesh/shared';
import type { HealthCheckConfig } from '../types.ts';
import type { Upstream, UpstreamPool } from './upstream-pool.ts';

export const DEFAULT_HEALTH_CHECK: HealthCheckConfig = {
  path: '/',
  intervalMs: 5_000,
  timeoutMs: 2_000,
};

export interface HealthCheckerOptions {
  pool: UpstreamPool;
  dialer: Dialer;
  /** @default the origin's healthCheck, else {@link DEFAULT_HEALTH_CHECK} */
  config?: HealthCheckConfig;
  logger?: Logger;
  clock?: Clock;
}

/**
 * Active health checks for one origin's upstreams, like nginx `health_check`: every
 * `intervalMs`, GET `path` on each http upstream (2xx/3xx within `timeoutMs` is up; the
 * probe goes through the upstream's keep-alive pool, hence the dialer), or a TCP connect
 * through the dialer for tcp upstreams. Results go to {@link UpstreamPool.setActive}.
 */
export class HealthChecker {
  readonly config: HealthCheckConfig;
  readonly #pool: UpstreamPool;
  readonly #dialer: Dialer;
  readonly #clock: Clock;
  readonly #log: Logger;
  #timer: TimerHandle | undefined;
  #running: Promise<void> | undefined;
  #closed = false;

  constructor(options: HealthCheckerOptions) {
    this.#pool = options.pool;
    this.#dialer = options.dialer;
    this.#clock = options.clock ?? systemClock;
    this.config = options.config ?? options.pool.origin.healthCheck ?? DEFAULT_HEALTH_CHECK;
    this.#log = (options.logger ?? silentLogger()).child({
      [F.COMPONENT]: 'health-check',
      [F.ORIGIN]: options.pool.origin.name,
    });
  }

  /** Runs a first round now, then one every `intervalMs`. */
  start(): void {
    if (this.#closed || this.#timer !== undefined) return;
    const tick = () => {
      this.#timer = undefined;
      void this.checkNow().finally(() => {
        if (!this.#closed) this.#timer = this.#clock.setTimeout(tick, this.config.intervalMs);
      });
    };
    tick();
  }

  /** One round over every upstream; resolves when all probes ended. Never rejects. */
  checkNow(): Promise<void> {
    if (this.#running) return this.#running;
    this.#running = Promise.all(this.#pool.upstreams.map((u) => this.#probe(u))).then(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #probe(u: Upstream): Promise<void> {
    const { timeoutMs, path } = this.config;
    const signal = AbortSignal.timeout(timeoutMs);
    try {
      if (u.address.scheme === 'tcp') {
        const socket = await this.#dialer.dial(u.address, { timeoutMs, signal });
        socket.destroy();
        this.#pool.setActive(u, true, 'connected');
        return;
      }
      const res = await this.#pool.dispatcherFor(u).request({
        method: 'GET',
        path,
        headers: { 'user-agent': 'relaymesh-health-check' },
        signal,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      await res.body.dump({ limit: 64 * 1024 });
      const ok = res.statusCode >= 200 && res.statusCode < 400;
      this.#pool.setActive(u, ok, `status ${res.statusCode}`);
    } catch (err) {
      if (this.#closed) return;
      this.#log.debug({ upstream: u.address.url, err }, 'health probe failed');
      this.#pool.setActive(u, false, (err as Error).message);
    }
  }

  /** Stops scheduling checks. Idempotent. */
  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  destroy(): void {
    this.close();
  }
}
