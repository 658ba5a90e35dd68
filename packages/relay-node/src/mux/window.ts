/**
 * Receive-side flow control: how much credit a stream has granted, when to return it,
 * and when to grow the window (QUIC-style auto-tuning), all bounded by {@link CreditBudget}s.
 */

/**
 * A cap on granted-but-unconsumed receive credit, i.e. on the bytes peers may make us
 * buffer. Budgets nest: a session budget has the process budget as parent, and a
 * reservation succeeds only when every level has room. All-or-nothing, never partial.
 */
export class CreditBudget {
  readonly limit: number;
  readonly #parent: CreditBudget | undefined;
  #used = 0;

  /** @param limit bytes; @param parent a budget charged as well (e.g. the process budget). */
  constructor(limit: number, parent?: CreditBudget) {
    this.limit = limit;
    this.#parent = parent;
  }

  get used(): number {
    return this.#used;
  }

  get available(): number {
    const own = this.limit - this.#used;
    return this.#parent === undefined ? own : Math.min(own, this.#parent.available);
  }

  /** Reserves `bytes` here and in every parent; false (and nothing reserved) if any is short. */
  tryReserve(bytes: number): boolean {
    if (bytes > this.available) return false;
    this.#used += bytes;
    this.#parent?.tryReserve(bytes);
    return true;
  }

  /** Returns `bytes` here and in every parent. Releasing more than reserved clamps at 0. */
  release(bytes: number): void {
    const n = Math.min(bytes, this.#used);
    this.#used -= n;
    this.#parent?.release(n);
  }
}

/**
 * The process-wide budget every Session charges unless given another one. 1 GiB: the sum
 * of receive buffers all peers together can make this process hold.
 */
export const processCreditBudget = new CreditBudget(1024 * 1024 * 1024);

export interface ReceiveWindowOptions {
  initial: number;
  max: number;
  budget: CreditBudget;
  now: () => number;
  /** Smoothed RTT in ms, or undefined before the first sample (then no growth). */
  srtt: () => number | undefined;
}

/**
 * One stream's receive window. Credit the peer holds shrinks as DATA arrives and is
 * returned as the application consumes bytes, never on receipt, so a slow reader only
 * slows its own stream. The caller reserved `initial` in the budget before creating it.
 */
export class ReceiveWindow {
  /** Current window size (bytes the peer may have in flight or sitting unread with us). */
  size: number;
  /** Bytes the peer may still send before it must wait for a WINDOW_UPDATE. */
  credit: number;
  readonly #max: number;
  readonly #budget: CreditBudget;
  readonly #now: () => number;
  readonly #srtt: () => number | undefined;
  #consumed = 0;
  #epochStart: number;
  /** Bytes received and credit granted since the stream began (for the credit-loop probe). */
  #received = 0;
  #granted: number;
  /** While a probe runs: the grant before the update that started it, and when it was sent. */
  #probeLimit = -1;
  #probeSentAt = 0;
  /** Last credit loop: an update sent to a blocked sender → the first byte it allowed arrived. */
  #loopMs: number | undefined;

  constructor(options: ReceiveWindowOptions) {
    this.size = options.initial;
    this.credit = options.initial;
    this.#granted = options.initial;
    this.#max = options.max;
    this.#budget = options.budget;
    this.#now = options.now;
    this.#srtt = options.srtt;
    this.#epochStart = options.now();
  }

  /** DATA of `n` bytes arrived. False means the peer overran its credit (a violation). */
  receive(n: number): boolean {
    if (n > this.credit) return false;
    this.credit -= n;
    this.#received += n;
    if (this.#probeLimit >= 0 && this.#received > this.#probeLimit) {
      this.#loopMs = this.#now() - this.#probeSentAt;
      this.#probeLimit = -1;
    }
    return true;
  }

  /**
   * The application consumed `n` bytes. Returns the WINDOW_UPDATE delta to send now, or 0.
   * Credit goes back once half the window is consumed (fewer, larger updates). If that half
   * took less than 4·fraction·RTT (= 2·RTT at one half), the window is the bottleneck:
   * double it, if the budget agrees. RTT is the larger of SRTT and the last measured credit
   * loop (capped at 20 ms), see #growth.
   */
  consume(n: number): number {
    this.#consumed += n;
    if (this.#consumed * 2 < this.size) return 0;
    const now = this.#now();
    const growth = this.#growth(now);
    const delta = this.#consumed + growth;
    // The sender has used (nearly) all its credit: it is waiting for this update, so the
    // first byte past the current grant arrives one credit loop from now. Measure it.
    if (this.#probeLimit < 0 && this.credit * 8 <= this.size) {
      this.#probeLimit = this.#granted;
      this.#probeSentAt = now;
    }
    this.#granted += delta;
    this.size += growth;
    this.credit += delta;
    this.#consumed = 0;
    this.#epochStart = now;
    return delta;
  }

  #growth(now: number): number {
    const srtt = this.#srtt();
    if (srtt === undefined || this.size >= this.#max) return 0;
    // The credit loop can be far longer than the PING RTT: an update also waits for both
    // event loops and the sender's queue. On loopback a PING answered while idle says
    // 0.1 ms while a busy loop takes tens of ms, and with SRTT alone the window never grows.
    // A loop sample counts up to LOOP_CAP_MS only: a longer one is mostly our own reader
    // being busy, and a bigger window would only buffer more for it.
    const rtt = Math.max(srtt, Math.min(this.#loopMs ?? 0, LOOP_CAP_MS));
    const elapsed = now - this.#epochStart;
    const fraction = this.#consumed / this.size;
    if (elapsed >= 4 * fraction * rtt) return 0;
    const growth = Math.min(this.size, this.#max - this.size);
    return this.#budget.tryReserve(growth) ? growth : 0;
  }
}

/** Credit-loop samples above this (ms) are capped; see ReceiveWindow#growth. */
const LOOP_CAP_MS = 20;

/**
 * Samples in the windowed minimum ({@link RttEstimator.windowMin}): 3 s at the default
 * 500 ms PING period. Long enough that the least of them is close to the path's base RTT
 * (on a link whose per-packet delay jitters with a lognormal tail, the mean sample is
 * about 3.3 x the median jitter above it, the least of 6 about 1.1 x); short enough that a
 * link that gets slower shows it 3 s later (routes must move within 10 s).
 */
export const RTT_WINDOW_SAMPLES = 6;

/**
 * RTT estimator, RFC 6298 (α = 1/8, β = 1/4), plus min, windowed min and last sample.
 * Milliseconds.
 */
export class RttEstimator {
  srtt: number | undefined;
  rttvar: number | undefined;
  min: number | undefined;
  last: number | undefined;
  samples = 0;
  /** The last {@link RTT_WINDOW_SAMPLES} samples, a ring indexed by `samples`. */
  readonly #recent: number[] = [];

  add(sample: number): void {
    this.#recent[this.samples % RTT_WINDOW_SAMPLES] = sample;
    this.samples++;
    this.last = sample;
    this.min = this.min === undefined ? sample : Math.min(this.min, sample);
    if (this.srtt === undefined || this.rttvar === undefined) {
      this.srtt = sample;
      this.rttvar = sample / 2;
      return;
    }
    this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - sample);
    this.srtt = 0.875 * this.srtt + 0.125 * sample;
  }

  /**
   * The least of the last {@link RTT_WINDOW_SAMPLES} samples: the path's base RTT without
   * the queueing and jitter that SRTT averages in. Routing compares paths by it (a path's
   * jitter is charged separately, from rttvar).
   */
  get windowMin(): number | undefined {
    return this.#recent.length === 0 ? undefined : Math.min(...this.#recent);
  }
}

/** A snapshot of {@link RttEstimator}; all undefined until the first sample. */
export interface RttStats {
  srttMs: number | undefined;
  rttvarMs: number | undefined;
  minMs: number | undefined;
  /** {@link RttEstimator.windowMin}. */
  windowMinMs: number | undefined;
  lastMs: number | undefined;
  samples: number;
}
