import type { Socket } from 'node:net';
import {
  type Clock,
  type Dialer,
  F,
  type Logger,
  silentLogger,
  systemClock,
} from '@relaymesh/shared';
import { Pool } from 'undici';
import type { Origin, UpstreamAddress } from '../types.ts';

/** How a pool chooses among healthy upstreams. */
export type BalanceMode = 'round-robin' | 'least-outstanding';

export interface UpstreamPoolOptions {
  origin: Origin;
  /** Every origin connection goes through it (egress proxy). */
  dialer: Dialer;
  logger?: Logger;
  clock?: Clock;
  /** @default 'least-outstanding' (ties broken round-robin) */
  balance?: BalanceMode;
  /** Consecutive passive failures (connect error, timeout, 502/503/504) that mark an upstream down. @default 2 */
  maxFails?: number;
  /** How long a passively marked upstream stays down. @default 10000 */
  failTimeoutMs?: number;
  /** @default 5000 */
  connectTimeoutMs?: number;
  /** Time to the origin's response headers. @default 30000 */
  headersTimeoutMs?: number;
  /** Idle time between response body chunks. @default 120000 */
  bodyTimeoutMs?: number;
  /** Idle keep-alive sockets close after this (origin hints win). @default 4000 */
  keepAliveTimeoutMs?: number;
  /** Most connections per upstream. @default 128 */
  connections?: number;
}

/** One upstream server and what the pool knows about it. */
export class Upstream {
  readonly address: UpstreamAddress;
  /** Result of the last active health check (true until a check says otherwise). */
  activeUp = true;
  consecutiveFailures = 0;
  /** Passive mark: down until this clock time. */
  downUntil = 0;
  /** Requests or connections in flight. */
  outstanding = 0;
  dispatcher: Pool | undefined;

  constructor(address: UpstreamAddress) {
    this.address = address;
  }
}

/**
 * The upstreams of one origin, at the exit: one keep-alive undici Pool per http upstream
 * (dialled through the node's Dialer), load balancing over the healthy ones, passive
 * failure marking like nginx `max_fails`/`fail_timeout`. Health checks feed it
 * ({@link HealthChecker}).
 */
export class UpstreamPool {
  readonly origin: Origin;
  readonly upstreams: readonly Upstream[];
  readonly headersTimeoutMs: number;
  readonly bodyTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly #dialer: Dialer;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #balance: BalanceMode;
  readonly #maxFails: number;
  readonly #failTimeoutMs: number;
  readonly #keepAliveTimeoutMs: number;
  readonly #connections: number;
  #rr = 0;
  #closed = false;

  constructor(options: UpstreamPoolOptions) {
    this.origin = options.origin;
    this.upstreams = options.origin.upstreams.map((a) => new Upstream(a));
    this.#dialer = options.dialer;
    this.#clock = options.clock ?? systemClock;
    this.#log = (options.logger ?? silentLogger()).child({
      [F.COMPONENT]: 'upstream-pool',
      [F.ORIGIN]: options.origin.name,
    });
    this.#balance = options.balance ?? 'least-outstanding';
    this.#maxFails = options.maxFails ?? 2;
    this.#failTimeoutMs = options.failTimeoutMs ?? 10_000;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 5_000;
    this.headersTimeoutMs = options.headersTimeoutMs ?? 30_000;
    this.bodyTimeoutMs = options.bodyTimeoutMs ?? 120_000;
    this.#keepAliveTimeoutMs = options.keepAliveTimeoutMs ?? 4_000;
    this.#connections = options.connections ?? 128;
  }

  /** Usable now: the last health check passed and no passive mark is active. */
  isHealthy(u: Upstream): boolean {
    return u.activeUp && this.#clock.now() >= u.downUntil;
  }

  /**
   * Picks an upstream among those `accept` allows and not in `exclude`: a healthy one
   * if any (least outstanding, ties round-robin), else any of them (when every upstream
   * looks down, trying beats refusing: the marks may be stale). undefined when none match.
   */
  pick(accept: (u: Upstream) => boolean, exclude: ReadonlySet<Upstream>): Upstream | undefined {
    const candidates = this.upstreams.filter((u) => accept(u) && !exclude.has(u));
    if (candidates.length === 0) return undefined;
    const healthy = candidates.filter((u) => this.isHealthy(u));
    const from = healthy.length > 0 ? healthy : candidates;
    const start = this.#rr++ % from.length;
    let best = from[start] as Upstream;
    if (this.#balance === 'round-robin') return best;
    for (let i = 1; i < from.length; i++) {
      const u = from[(start + i) % from.length] as Upstream;
      if (u.outstanding < best.outstanding) best = u;
    }
    return best;
  }

  /** The keep-alive pool for an http upstream, created on first use. */
  dispatcherFor(u: Upstream): Pool {
    if (u.dispatcher) return u.dispatcher;
    const { host, port } = u.address;
    const dialer = this.#dialer;
    const timeoutMs = this.connectTimeoutMs;
    u.dispatcher = new Pool(`http://${host}:${port}`, {
      connections: this.#connections,
      pipelining: 1,
      keepAliveTimeout: this.#keepAliveTimeoutMs,
      keepAliveMaxTimeout: 600_000,
      headersTimeout: this.headersTimeoutMs,
      bodyTimeout: this.bodyTimeoutMs,
      maxHeaderSize: 16 * 1024,
      // Through the node's dialer, so origin connections honour the egress proxy.
      connect: (_opts, callback) => {
        dialer.dial({ host, port }, { timeoutMs }).then(
          (socket: Socket) => callback(null, socket),
          (err: Error) => callback(err, null),
        );
      },
    });
    return u.dispatcher;
  }

  /** Passive success: clears the failure count. */
  reportSuccess(u: Upstream): void {
    u.consecutiveFailures = 0;
  }

  /** Passive failure; after `maxFails` in a row the upstream is down for `failTimeoutMs`. */
  reportFailure(u: Upstream, reason: string): void {
    u.consecutiveFailures += 1;
    if (u.consecutiveFailures >= this.#maxFails && this.#clock.now() >= u.downUntil) {
      u.downUntil = this.#clock.now() + this.#failTimeoutMs;
      u.consecutiveFailures = 0;
      this.#log.warn(
        { upstream: u.address.url, reason, downMs: this.#failTimeoutMs },
        'upstream marked down after consecutive failures',
      );
    }
  }

  /** Active health check result; logs transitions only. */
  setActive(u: Upstream, up: boolean, reason: string): void {
    if (u.activeUp === up) return;
    u.activeUp = up;
    if (up) u.downUntil = 0;
    this.#log.warn({ upstream: u.address.url, up, reason }, 'upstream health changed');
  }

  /** Graceful: lets in-flight requests finish. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all(this.upstreams.map((u) => u.dispatcher?.close().catch(() => {})));
  }

  /** Immediate: aborts in-flight requests. Idempotent. */
  async destroy(err?: Error): Promise<void> {
    this.#closed = true;
    await Promise.all(
      this.upstreams.map((u) => u.dispatcher?.destroy(err ?? null).catch(() => {})),
    );
  }
}
