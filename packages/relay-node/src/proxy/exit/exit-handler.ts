import {
  type Clock,
  type Dialer,
  F,
  type Logger,
  silentLogger,
  systemClock,
} from '@relaymesh/shared';
import type { OpenHeader } from '../open-header.ts';
import type { HopStream, Origin, OriginCatalog } from '../types.ts';
import { HealthChecker } from './health-checker.ts';
import { replyError, serveHttp } from './http-exit.ts';
import { serveRaw } from './tcp-exit.ts';
import { type BalanceMode, UpstreamPool, type UpstreamPoolOptions } from './upstream-pool.ts';

export interface ExitHandlerOptions {
  catalog: OriginCatalog;
  /** The node's dialer: every origin connection goes through it. */
  dialer: Dialer;
  logger?: Logger;
  clock?: Clock;
  /** Run active health checks for origins that declare one. @default true */
  healthChecks?: boolean;
  /** Passed to each {@link UpstreamPool}. */
  pool?: Omit<UpstreamPoolOptions, 'origin' | 'dialer' | 'logger' | 'clock'> & {
    balance?: BalanceMode;
  };
}

/**
 * The exit role: serves streams whose open header has no hops left. One
 * {@link UpstreamPool} (and health checker) per origin, created on first use.
 */
export class ExitHandler {
  readonly #catalog: OriginCatalog;
  readonly #dialer: Dialer;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #healthChecks: boolean;
  readonly #poolOptions: ExitHandlerOptions['pool'];
  readonly #pools = new Map<string, { pool: UpstreamPool; checker: HealthChecker | undefined }>();
  #closed = false;

  constructor(options: ExitHandlerOptions) {
    this.#catalog = options.catalog;
    this.#dialer = options.dialer;
    this.#clock = options.clock ?? systemClock;
    this.#log = (options.logger ?? silentLogger()).child({ [F.COMPONENT]: 'exit' });
    this.#healthChecks = options.healthChecks ?? true;
    this.#poolOptions = options.pool;
  }

  /** The pool of a declared origin (creating it and starting its health checks). */
  poolFor(originName: string): UpstreamPool | undefined {
    const origin = this.#catalog.byName(originName);
    const known = this.#pools.get(originName);
    if (known && origin && sameOrigin(known.pool.origin, origin)) return known.pool;
    if (known) {
      // The declaration changed (or went away): new requests use a new pool; the old
      // one finishes what it has in flight, then closes.
      this.#pools.delete(originName);
      known.checker?.close();
      void known.pool.close();
    }
    if (!origin || this.#closed) return undefined;
    const pool = new UpstreamPool({
      ...this.#poolOptions,
      origin,
      dialer: this.#dialer,
      logger: this.#log,
      clock: this.#clock,
    });
    let checker: HealthChecker | undefined;
    if (this.#healthChecks && origin.healthCheck) {
      checker = new HealthChecker({
        pool,
        dialer: this.#dialer,
        logger: this.#log,
        clock: this.#clock,
      });
      checker.start();
    }
    this.#pools.set(originName, { pool, checker });
    return pool;
  }

  /** The health checker of an origin, if it has one running. */
  checkerFor(originName: string): HealthChecker | undefined {
    return this.#pools.get(originName)?.checker;
  }

  /** Serves one stream whose header was already read (and validated). Never rejects. */
  async serve(stream: HopStream, header: OpenHeader): Promise<void> {
    const pool = this.poolFor(header.origin);
    const log = { reqId: header.id, [F.ORIGIN]: header.origin, kind: header.kind };
    if (!pool) {
      this.#log.warn(log, 'stream for an origin that is not declared here');
      replyError(
        stream,
        502,
        'ERR_PROXY_NOT_DECLARED',
        `origin ${header.origin} is not declared at the exit`,
      );
      return;
    }
    try {
      if (header.kind === 'http') await serveHttp(stream, header, pool, this.#log);
      else await serveRaw(stream, header, pool, this.#dialer);
    } catch (err) {
      this.#log.error({ ...log, err }, 'exit failed to serve a stream');
      stream.destroy();
    }
  }

  /** Stops health checks and lets origin connections finish. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    const all = [...this.#pools.values()];
    this.#pools.clear();
    for (const p of all) p.checker?.close();
    await Promise.all(all.map((p) => p.pool.close()));
  }

  /** Aborts everything at once. Idempotent. */
  async destroy(err?: Error): Promise<void> {
    this.#closed = true;
    const all = [...this.#pools.values()];
    this.#pools.clear();
    for (const p of all) p.checker?.destroy();
    await Promise.all(all.map((p) => p.pool.destroy(err)));
  }
}

/** Same upstreams and health check: the pool (connections, health state) can be kept. */
function sameOrigin(a: Origin, b: Origin): boolean {
  if (a === b) return true;
  const key = (o: Origin) => JSON.stringify([o.upstreams.map((u) => u.url), o.healthCheck ?? null]);
  return key(a) === key(b);
}
