import { hashSeed, type LinkProfile, sampleJitterMs, seededRandom } from './profile.ts';
import { type DelayScheduler, EARLY_TOLERANCE_MS } from './scheduler.ts';

/** The bottleneck queue holds at least this much, so one socket read fits. */
export const QUEUE_MIN_BYTES = 32 * 1024;
/** ...and otherwise this many milliseconds of the link's rate (a short, unbloated queue). */
export const QUEUE_MS = 20;
/** Hard cap on bytes in flight per direction whatever the profile (memory bound). */
export const MAX_INFLIGHT_BYTES = 64 * 1024 * 1024;

/** What `GET /links` reports for one direction. */
export interface LinkDirectionStats {
  from: string;
  to: string;
  profile: LinkProfile;
  baseProfile: LinkProfile;
  blackholed: boolean;
  bytes: number;
  activeConnections: number;
  totalConnections: number;
  inflightBytes: number;
  inflightLimitBytes: number;
  maxInflightBytes: number;
}

/** Something on this direction that holds delayed bytes (one side of a spliced connection). */
export interface LinkUser {
  /** Called on heal: nothing may arrive before `at`. */
  retime(at: number): void;
}

/**
 * One direction of the emulated link between two regions, shared by every connection that
 * sends from `from` to `to` (one token bucket and one delay line per direction, not per
 * connection: multiplexed tunnels must compete for the link as they would on a real path).
 *
 * The link is a FIFO bottleneck: a chunk accepted at `now` starts transmitting when the link
 * is free (`busyUntil`), takes `bytes / rate`, then propagates for `rtt / 2` plus jitter.
 * Senders must stop reading their source while {@link congested} is true; that bounds the
 * bytes in flight to about `rate * rtt / 2 + queue`, so the sender feels backpressure.
 */
export class LinkDirection {
  readonly from: string;
  readonly to: string;
  readonly #scheduler: DelayScheduler;
  readonly #random: () => number;
  readonly #base: LinkProfile;
  #profile: LinkProfile;
  #busyUntil = 0;
  #blackholed = false;
  #inflight = 0;
  #maxInflight = 0;
  #bytes = 0;
  #totalConnections = 0;
  readonly #users = new Set<LinkUser>();
  readonly #waiters = new Set<() => void>();
  #wakeAt = Number.POSITIVE_INFINITY;

  constructor(from: string, to: string, profile: LinkProfile, scheduler: DelayScheduler, seed = 1) {
    this.from = from;
    this.to = to;
    this.#base = profile;
    this.#profile = profile;
    this.#scheduler = scheduler;
    this.#random = seededRandom(hashSeed(seed, `${from}>${to}`));
  }

  get profile(): LinkProfile {
    return this.#profile;
  }

  get blackholed(): boolean {
    return this.#blackholed;
  }

  get oneWayMs(): number {
    return this.#profile.rttMs / 2;
  }

  /** Bytes per millisecond; Infinity for an unshaped link. */
  #bytesPerMs(): number {
    const bps = this.#profile.bandwidthBps;
    return bps > 0 && Number.isFinite(bps) ? bps / 8 / 1000 : Number.POSITIVE_INFINITY;
  }

  queueLimitBytes(): number {
    const rate = this.#bytesPerMs();
    return Number.isFinite(rate) ? Math.max(QUEUE_MIN_BYTES, rate * QUEUE_MS) : QUEUE_MIN_BYTES;
  }

  inflightLimitBytes(): number {
    const rate = this.#bytesPerMs();
    const bdp = Number.isFinite(rate) ? rate * this.oneWayMs : 16 * QUEUE_MIN_BYTES;
    return Math.min(MAX_INFLIGHT_BYTES, bdp + this.queueLimitBytes());
  }

  /** True when senders must stop reading: blackholed, queue full, or too much in flight. */
  congested(now: number): boolean {
    if (this.#blackholed) return true;
    if (this.#inflight >= this.inflightLimitBytes()) return true;
    // Same tolerance as the scheduler: a wake that runs slightly early must see room, or it
    // would re-arm itself for a time that is already (almost) now and spin.
    return this.#backlogBytes(now + EARLY_TOLERANCE_MS) >= this.queueLimitBytes();
  }

  #backlogBytes(now: number): number {
    return Math.max(0, this.#busyUntil - now) * this.#bytesPerMs() || 0;
  }

  /**
   * Accepts `len` bytes at `now` onto the wire; returns when they reach the far end (before
   * the caller's no-reordering clamp). Zero bytes (a FIN) wait behind queued data but take no time.
   */
  transmit(len: number, now: number): number {
    const start = Math.max(now, this.#busyUntil);
    const rate = this.#bytesPerMs();
    this.#busyUntil = start + (Number.isFinite(rate) ? len / rate : 0);
    this.#bytes += len;
    this.#inflight += len;
    if (this.#inflight > this.#maxInflight) this.#maxInflight = this.#inflight;
    const jitter = sampleJitterMs(this.#profile.jitter, this.#random);
    return this.#busyUntil + this.oneWayMs + jitter;
  }

  /** `len` bytes left the link (delivered or dropped with their connection). */
  delivered(len: number): void {
    this.#inflight = Math.max(0, this.#inflight - len);
    if (this.#waiters.size > 0) this.#wake();
  }

  /** Calls `fn` once when the link has room again (never while blackholed). */
  waitForRoom(fn: () => void): void {
    this.#waiters.add(fn);
    this.#armTimedWake();
  }

  /** The queue drains with time alone: wake the waiters when it falls below its limit. */
  #armTimedWake(): void {
    if (this.#blackholed) return;
    const at = this.#busyUntil - this.queueLimitBytes() / this.#bytesPerMs();
    // A past time means the queue is not what blocks (bytes in flight are): delivered() wakes.
    const now = this.#scheduler.now();
    if (!Number.isFinite(at) || at <= now + EARLY_TOLERANCE_MS || at >= this.#wakeAt) return;
    this.#wakeAt = at;
    this.#scheduler.schedule(at, () => {
      this.#wakeAt = Number.POSITIVE_INFINITY;
      if (this.#waiters.size > 0) this.#wake();
    });
  }

  #wake(): void {
    if (this.congested(this.#scheduler.now())) {
      this.#armTimedWake();
      return;
    }
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const fn of waiters) fn();
  }

  attach(user: LinkUser): void {
    this.#users.add(user);
    this.#totalConnections++;
  }

  detach(user: LinkUser): void {
    this.#users.delete(user);
  }

  /** Bytes stop in this direction; nothing closes. */
  blackhole(): void {
    this.#blackholed = true;
  }

  /** New delay and bandwidth for live and new connections (unset fields keep their value). */
  degrade(change: Partial<LinkProfile>): void {
    this.#profile = { ...this.#profile, ...change };
  }

  /** Back to the configured profile; held bytes resume as if retransmitted after the outage. */
  heal(): void {
    const wasBlackholed = this.#blackholed;
    this.#blackholed = false;
    this.#profile = this.#base;
    const now = this.#scheduler.now();
    this.#busyUntil = Math.max(this.#busyUntil, now);
    if (wasBlackholed) for (const u of this.#users) u.retime(now + this.oneWayMs);
    this.#wake();
  }

  stats(): LinkDirectionStats {
    return {
      from: this.from,
      to: this.to,
      profile: this.#profile,
      baseProfile: this.#base,
      blackholed: this.#blackholed,
      bytes: this.#bytes,
      activeConnections: this.#users.size,
      totalConnections: this.#totalConnections,
      inflightBytes: this.#inflight,
      inflightLimitBytes: Math.round(this.inflightLimitBytes()),
      maxInflightBytes: this.#maxInflight,
    };
  }
}
