import { type Clock, RelayError, type TimerHandle } from '@relaymesh/shared';
import { RttEstimator, type RttStats } from './window.ts';

export interface KeepaliveOptions {
  clock: Clock;
  intervalMs: number;
  deadTimeoutMs: number;
  pingTimeoutMs: number;
  /** Sends PING|SYN with this opaque value. */
  sendPing(opaque: number): void;
  /** No frame from the peer for deadTimeoutMs. */
  onDead(silentMs: number): void;
  onRtt(sampleMs: number): void;
}

interface Outstanding {
  sentAt: number;
  waiters: Array<{ resolve(ms: number): void; reject(err: Error): void; timer: TimerHandle }>;
}

/** At most this many pings in flight; further `ping()` calls share the newest one. */
const MAX_OUTSTANDING = 16;

/**
 * PING every `intervalMs` (each answer is an RTT sample, RFC 6298 smoothing) and the
 * dead-peer check: the session calls `markRx()` for every frame (a flag, no clock read);
 * each tick turns a set flag into "last heard now". Silence is therefore detected between
 * deadTimeoutMs and deadTimeoutMs + intervalMs after the last frame.
 */
export class Keepalive {
  readonly rtt = new RttEstimator();
  readonly #o: KeepaliveOptions;
  readonly #outstanding = new Map<number, Outstanding>();
  #nextOpaque = 1;
  #rxSeen = false;
  #lastRx: number;
  #timer: TimerHandle | undefined;
  #stopped = false;

  constructor(options: KeepaliveOptions) {
    this.#o = options;
    this.#lastRx = options.clock.now();
  }

  /** Sends the first ping at once (so auto-tuning has an RTT early) and starts ticking. */
  start(): void {
    this.#sendPing();
    this.#schedule();
  }

  markRx(): void {
    this.#rxSeen = true;
  }

  get stats(): RttStats {
    const r = this.rtt;
    return {
      srttMs: r.srtt,
      rttvarMs: r.rttvar,
      minMs: r.min,
      windowMinMs: r.windowMin,
      windowJitterMs: r.windowJitter,
      recentMinMs: r.recentMin(this.#o.clock.now()),
      lastMs: r.last,
      samples: r.samples,
    };
  }

  /** An on-demand RTT sample. Rejects with ERR_MUX_KEEPALIVE_TIMEOUT after pingTimeoutMs. */
  ping(): Promise<number> {
    if (this.#stopped) {
      return Promise.reject(new RelayError('ERR_MUX_SESSION_CLOSED', 'ping on a closed session'));
    }
    const opaque =
      this.#outstanding.size >= MAX_OUTSTANDING ? this.#newestOpaque() : this.#sendPing();
    const entry = this.#outstanding.get(opaque)!;
    return new Promise<number>((resolve, reject) => {
      const timer = this.#o.clock.setTimeout(() => {
        const i = entry.waiters.findIndex((w) => w.timer === timer);
        if (i >= 0) entry.waiters.splice(i, 1);
        reject(
          new RelayError(
            'ERR_MUX_KEEPALIVE_TIMEOUT',
            `no ping answer in ${this.#o.pingTimeoutMs} ms`,
          ),
        );
      }, this.#o.pingTimeoutMs);
      entry.waiters.push({ resolve, reject, timer });
    });
  }

  /** The peer answered the ping carrying `opaque`. Unknown values are ignored. */
  onPong(opaque: number): void {
    const entry = this.#outstanding.get(opaque);
    if (!entry) return;
    this.#outstanding.delete(opaque);
    const now = this.#o.clock.now();
    const sample = Math.max(0, now - entry.sentAt);
    this.rtt.add(sample, now);
    for (const w of entry.waiters) {
      this.#o.clock.clearTimeout(w.timer);
      w.resolve(sample);
    }
    this.#o.onRtt(sample);
  }

  /** Stops the timer and rejects pending `ping()` calls with `err`. Idempotent. */
  stop(err: Error): void {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#timer !== undefined) this.#o.clock.clearTimeout(this.#timer);
    for (const entry of this.#outstanding.values()) {
      for (const w of entry.waiters) {
        this.#o.clock.clearTimeout(w.timer);
        w.reject(err);
      }
    }
    this.#outstanding.clear();
  }

  #schedule(): void {
    this.#timer = this.#o.clock.setTimeout(() => this.#tick(), this.#o.intervalMs);
  }

  #tick(): void {
    if (this.#stopped) return;
    const now = this.#o.clock.now();
    if (this.#rxSeen) {
      this.#rxSeen = false;
      this.#lastRx = now;
    } else if (now - this.#lastRx >= this.#o.deadTimeoutMs) {
      this.#o.onDead(now - this.#lastRx);
      return;
    }
    this.#expire(now);
    this.#sendPing();
    this.#schedule();
  }

  /** Forgets unanswered keepalive pings older than the ping timeout (keeps the map bounded). */
  #expire(now: number): void {
    for (const [opaque, entry] of this.#outstanding) {
      if (entry.waiters.length === 0 && now - entry.sentAt >= this.#o.pingTimeoutMs) {
        this.#outstanding.delete(opaque);
      }
    }
  }

  #sendPing(): number {
    const opaque = this.#nextOpaque;
    this.#nextOpaque = (this.#nextOpaque % 0xffff_ffff) + 1;
    if (this.#outstanding.size >= MAX_OUTSTANDING) {
      const oldest = this.#outstanding.keys().next().value;
      const entry = oldest === undefined ? undefined : this.#outstanding.get(oldest);
      if (oldest !== undefined && entry?.waiters.length === 0) this.#outstanding.delete(oldest);
    }
    this.#outstanding.set(opaque, { sentAt: this.#o.clock.now(), waiters: [] });
    this.#o.sendPing(opaque);
    return opaque;
  }

  #newestOpaque(): number {
    let last = 0;
    for (const k of this.#outstanding.keys()) last = k;
    return last;
  }
}
