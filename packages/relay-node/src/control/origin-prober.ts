import {
  type Clock,
  type Dialer,
  F,
  type Logger,
  parseUpstream,
  RelayError,
  silentLogger,
  systemClock,
  type TimerHandle,
  type UpstreamTarget,
} from '@relaymesh/shared';
import type { OriginMeasurement } from './measurements.ts';

/** An origin to probe: its name and upstream URLs (http:// or tcp://). */
export interface ProbeOrigin {
  name: string;
  upstreams: readonly string[];
}

export interface OriginProberOptions {
  /** Every probe goes through the node's dialer (direct or via the egress proxy). */
  dialer: Dialer;
  /** Time between rounds. @default 5000 */
  intervalMs?: number;
  /** A connect slower than this counts as unreachable. @default 2000 */
  timeoutMs?: number;
  /** Probes in flight at once. @default 8 */
  concurrency?: number;
  /** EWMA weight of a new sample. @default 0.5 */
  alpha?: number;
  clock?: Clock;
  logger?: Logger;
}

interface Target {
  origin: string;
  upstream: UpstreamTarget;
}

/**
 * Measures the TCP connect RTT from this node to every origin upstream, periodically,
 * through the node's Dialer. A failed or timed-out connect marks the upstream unreachable
 * until a later probe succeeds. Results feed the coordinator reports via {@link origins}.
 */
export class OriginProber {
  readonly #dialer: Dialer;
  readonly #intervalMs: number;
  readonly #timeoutMs: number;
  readonly #concurrency: number;
  readonly #alpha: number;
  readonly #clock: Clock;
  readonly #logger: Logger;
  #targets: Target[] = [];
  #results = new Map<string, OriginMeasurement>();
  #timer: TimerHandle | undefined;
  #running: Promise<void> | undefined;
  #abort = new AbortController();
  #state: 'idle' | 'started' | 'closed' = 'idle';

  constructor(options: OriginProberOptions) {
    this.#dialer = options.dialer;
    this.#intervalMs = options.intervalMs ?? 5000;
    this.#timeoutMs = options.timeoutMs ?? 2000;
    this.#concurrency = Math.max(1, options.concurrency ?? 8);
    this.#alpha = options.alpha ?? 0.5;
    this.#clock = options.clock ?? systemClock;
    this.#logger = (options.logger ?? silentLogger()).child({ [F.COMPONENT]: 'origin-prober' });
  }

  /** Replaces the set of origins (e.g. on a membership update). Bad URLs are skipped. */
  setOrigins(origins: readonly ProbeOrigin[]): void {
    const targets: Target[] = [];
    for (const o of origins) {
      for (const u of o.upstreams) {
        try {
          targets.push({ origin: o.name, upstream: parseUpstream(u) });
        } catch (err) {
          this.#logger.warn(
            { [F.ORIGIN]: o.name, err },
            'skipping an upstream that is not a valid URL',
          );
        }
      }
    }
    this.#targets = targets;
    const keep = new Set(targets.map((t) => `${t.origin}\u0000${t.upstream.url}`));
    for (const k of this.#results.keys()) if (!keep.has(k)) this.#results.delete(k);
  }

  /** Latest result per origin upstream. */
  origins(): OriginMeasurement[] {
    return [...this.#results.values()].map((m) => ({ ...m }));
  }

  /** Starts periodic rounds (the first one at once). */
  start(): void {
    if (this.#state !== 'idle') return;
    this.#state = 'started';
    this.#schedule(0);
  }

  /** One round over every target, `concurrency` at a time. Resolves when all are done. */
  probeOnce(): Promise<void> {
    if (this.#running !== undefined) return this.#running;
    const run = this.#round().finally(() => {
      this.#running = undefined;
    });
    this.#running = run;
    return run;
  }

  /** Stops probing and waits for the round in flight. Idempotent. */
  async close(): Promise<void> {
    this.#stop();
    await this.#running;
  }

  /** Stops at once, aborting probes in flight. Idempotent. */
  destroy(): void {
    this.#stop();
    this.#abort.abort();
  }

  #stop(): void {
    this.#state = 'closed';
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(ms: number): void {
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      if (this.#state !== 'started') return;
      void this.probeOnce().then(() => {
        if (this.#state === 'started') this.#schedule(this.#intervalMs);
      });
    }, ms);
  }

  async #round(): Promise<void> {
    const queue = [...this.#targets];
    const worker = async () => {
      for (let t = queue.shift(); t !== undefined; t = queue.shift()) {
        if (this.#state === 'closed') return;
        await this.#probe(t);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.#concurrency, queue.length) }, worker));
  }

  /** Connect RTT through the dialer, or the failure (a timeout included). */
  async #connectRtt(t: Target): Promise<number | { err: unknown }> {
    const started = this.#clock.now();
    // Our own deadline too: a dialer (or proxy) that ignores timeoutMs must not stall rounds.
    const abort = new AbortController();
    const onStop = () => abort.abort(this.#abort.signal.reason);
    this.#abort.signal.addEventListener('abort', onStop, { once: true });
    const timer = this.#clock.setTimeout(() => abort.abort(), this.#timeoutMs);
    const dial = this.#dialer.dial(
      { host: t.upstream.host, port: t.upstream.port },
      { timeoutMs: this.#timeoutMs, signal: abort.signal },
    );
    try {
      const socket = await Promise.race([dial, aborted(abort.signal, this.#timeoutMs)]);
      socket.destroy();
      return this.#clock.now() - started;
    } catch (err) {
      this.#logger.debug(
        { [F.ORIGIN]: t.origin, upstream: t.upstream.url, err },
        'origin probe failed',
      );
      // A connect that completes after we gave up must not leak its socket.
      dial.then((late) => late.destroy()).catch(() => {});
      return { err };
    } finally {
      this.#clock.clearTimeout(timer);
      this.#abort.signal.removeEventListener('abort', onStop);
    }
  }

  async #probe(t: Target): Promise<void> {
    const key = `${t.origin}\u0000${t.upstream.url}`;
    const rtt = await this.#connectRtt(t);
    if (!this.#targets.some((x) => x === t)) return; // origins changed meanwhile
    const prev = this.#results.get(key);
    if (typeof rtt !== 'number') {
      // A change of state says so: the coordinator drops this node's leg to the origin
      // with its next report, and routes through this node as the exit go with it.
      if (prev?.reachable !== false)
        this.#logger.warn(
          { [F.ORIGIN]: t.origin, upstream: t.upstream.url, err: rtt.err },
          'origin upstream unreachable from this node',
        );
      this.#results.set(key, {
        origin: t.origin,
        upstream: t.upstream.url,
        rttMs: prev?.rttMs ?? 0,
        reachable: false,
      });
      return;
    }
    if (prev?.reachable === false)
      this.#logger.info(
        { [F.ORIGIN]: t.origin, upstream: t.upstream.url, rttMs: rtt },
        'origin upstream reachable again',
      );
    const smoothed = prev?.reachable ? prev.rttMs + this.#alpha * (rtt - prev.rttMs) : rtt;
    this.#results.set(key, {
      origin: t.origin,
      upstream: t.upstream.url,
      rttMs: smoothed,
      reachable: true,
    });
  }
}

/** Rejects when `signal` aborts; never resolves otherwise. */
function aborted(signal: AbortSignal, timeoutMs: number): Promise<never> {
  return new Promise((_, reject) => {
    const fail = () =>
      reject(
        new RelayError('ERR_DIAL_TIMEOUT', `probe gave up after ${timeoutMs} ms`, {
          cause: signal.reason,
        }),
      );
    if (signal.aborted) fail();
    else signal.addEventListener('abort', fail, { once: true });
  });
}
