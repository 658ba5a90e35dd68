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
  /**
   * The path's RTT without queueing: the lowest PING RTT of the recent past (ms), or
   * undefined before the first sample (then only the SRTT rule applies).
   */
  minRtt: () => number | undefined;
  /**
   * Slack (ms) on top of 1.25 x `minRtt` that the unarrived credit may take to drain at
   * the measured rate before growth stops (see ReceiveWindow#queueing).
   */
  queueBudgetMs: number;
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
  readonly #minRtt: () => number | undefined;
  readonly #queueBudgetMs: number;
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
  /** Bytes consumed since the stream began, and (time, that total) marks for the rate. */
  #consumedTotal = 0;
  readonly #rateMarks: Array<{ at: number; total: number }>;

  constructor(options: ReceiveWindowOptions) {
    this.size = options.initial;
    this.credit = options.initial;
    this.#granted = options.initial;
    this.#max = options.max;
    this.#budget = options.budget;
    this.#now = options.now;
    this.#srtt = options.srtt;
    this.#minRtt = options.minRtt;
    this.#queueBudgetMs = options.queueBudgetMs;
    this.#epochStart = options.now();
    this.#rateMarks = [{ at: this.#epochStart, total: 0 }];
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
   * loop (capped at 20 ms), see #growth. No growth either while the bytes in flight exceed
   * what the path holds (see #queueing): then a bigger window adds delay, not throughput.
   */
  consume(n: number): number {
    this.#consumed += n;
    this.#consumedTotal += n;
    if (this.#consumed * 2 < this.size) return 0;
    const now = this.#now();
    const growth = this.#growth(now);
    this.#markRate(now);
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
    if (elapsed >= 4 * fraction * rtt || this.#queueing(now)) return 0;
    const growth = Math.min(this.size, this.#max - this.size);
    return this.#budget.tryReserve(growth) ? growth : 0;
  }

  /**
   * Delay-based brake (the idea of TCP Vegas and BBR): growth only helps if the window is
   * what limits, i.e. if the bytes granted and not yet arrived (`credit`, read before this
   * update tops it up) are no more than the path itself holds: the measured delivery rate
   * (over the last 10 ms or min RTT, #rate) times the path's minimum RTT, plus a quarter
   * of that RTT and queueBudgetMs of slack.
   * Anything beyond sits in queues (ws, kernel socket buffers, the peer's event loop) ahead
   * of every other stream's frames on the tunnel: on loopback a 16 MiB window is ~10 ms of
   * it at 1.5 GB/s. SRTT and the credit loop cannot see this, as both grow with the very
   * queue the window fills. A sender that stalls (busy event loops) is still helped: its
   * bytes have all arrived when the update is due, so its credit is near 0. The minimum
   * RTT is windowed (RttEstimator.recentMin) so a path whose RTT really rose is re-learned
   * instead of freezing every window.
   */
  #queueing(now: number): boolean {
    const base = this.#minRtt();
    if (base === undefined) return false;
    const rate = this.#rate(now, base);
    if (rate === undefined) return false;
    return this.credit > rate * (base * (1 + QUEUE_RTT_FRACTION) + this.#queueBudgetMs);
  }

  /**
   * Bytes per ms consumed over the last max(RATE_INTERVAL_MS, base RTT), or since the
   * stream began if it is younger. Per epoch would not do: a reader that takes in 2 MiB
   * per event-loop turn consumes several half-windows in the same millisecond.
   */
  #rate(now: number, base: number): number | undefined {
    this.#pruneRateMarks(now, rateInterval(base));
    const from = this.#rateMarks[0]!;
    const elapsed = now - from.at;
    return elapsed > 0 ? (this.#consumedTotal - from.total) / elapsed : undefined;
  }

  /**
   * A mark per update, at most one per eighth of the interval, pruned here too (growth
   * stops asking for the rate at the max window): at most ~10 are kept.
   */
  #markRate(now: number): void {
    const interval = rateInterval(this.#minRtt() ?? 0);
    const last = this.#rateMarks[this.#rateMarks.length - 1]!;
    if (now - last.at >= interval / 8)
      this.#rateMarks.push({ at: now, total: this.#consumedTotal });
    this.#pruneRateMarks(now, interval);
  }

  /** Drops marks older than the newest one at or before `now - interval`. */
  #pruneRateMarks(now: number, interval: number): void {
    const marks = this.#rateMarks;
    while (marks.length > 1 && marks[1]!.at <= now - interval) marks.shift();
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
 * A fall in the link's RTT restarts the window ({@link RttEstimator.add}): when the newest
 * this many samples are all faster than every older sample of the window by
 * {@link LEVEL_SHIFT_RATIO} of the older least one and {@link LEVEL_SHIFT_MS}, the older
 * samples are dropped.
 */
export const LEVEL_SHIFT_SAMPLES = 3;
const LEVEL_SHIFT_RATIO = 0.2;
const LEVEL_SHIFT_MS = 10;

/** Queueing allowed on top of the min RTT, as a fraction of it (plus queueBudgetMs). */
const QUEUE_RTT_FRACTION = 0.25;

/** The delivery rate is measured over at least this long (ms), and at least one min RTT. */
const RATE_INTERVAL_MS = 10;

const rateInterval = (baseRtt: number): number => Math.max(RATE_INTERVAL_MS, baseRtt);

/**
 * Minimum of the samples of the last `windowMs` (a monotone deque: each entry is smaller
 * than every later one, so the front is the minimum). The newest sample is never
 * expired, so a path that stops answering keeps its last estimate rather than none.
 */
export class WindowedMin {
  readonly #windowMs: number;
  readonly #at: number[] = [];
  readonly #value: number[] = [];

  constructor(windowMs: number) {
    this.#windowMs = windowMs;
  }

  add(value: number, now: number): void {
    while (this.#value.length > 0 && this.#value[this.#value.length - 1]! >= value) {
      this.#value.pop();
      this.#at.pop();
    }
    this.#value.push(value);
    this.#at.push(now);
    // Bounded whatever the sample rate: dropping the front only shortens the window.
    if (this.#value.length > MAX_WINDOWED_SAMPLES) this.#dropFront();
  }

  /** The minimum over the samples taken since `now - windowMs`, or undefined before any. */
  get(now: number): number | undefined {
    while (this.#at.length > 1 && now - this.#at[0]! > this.#windowMs) this.#dropFront();
    return this.#value[0];
  }

  #dropFront(): void {
    this.#value.shift();
    this.#at.shift();
  }
}

const MAX_WINDOWED_SAMPLES = 64;

/**
 * How long a low RTT sample is remembered (ms). Long enough to span the bursts of a busy
 * tunnel (PINGs every 500 ms, many of them taken between bursts), short enough that a
 * path whose RTT really rose (a degraded link) is re-learned within seconds.
 */
export const MIN_RTT_WINDOW_MS = 10_000;

/**
 * RTT estimator, RFC 6298 (α = 1/8, β = 1/4), plus the all-time min, the min of the last
 * {@link MIN_RTT_WINDOW_MS} (the path's RTT without our own queueing, for auto-tuning)
 * the least of the last {@link RTT_WINDOW_SAMPLES} samples (the link's base RTT, for
 * routing), their mean excess over that least one (the link's jitter, for routing) and
 * the last sample. Milliseconds.
 */
export class RttEstimator {
  srtt: number | undefined;
  rttvar: number | undefined;
  min: number | undefined;
  last: number | undefined;
  samples = 0;
  /** The last {@link RTT_WINDOW_SAMPLES} samples (fewer after a level shift), oldest first. */
  readonly #recent: number[] = [];
  readonly #recentMin = new WindowedMin(MIN_RTT_WINDOW_MS);

  /** @param now the clock (ms) when the sample was taken, for the windowed min. */
  add(sample: number, now: number): void {
    this.#recent.push(sample);
    if (this.#recent.length > RTT_WINDOW_SAMPLES) this.#recent.shift();
    this.#restartAtLevelShift();
    this.samples++;
    this.last = sample;
    this.min = this.min === undefined ? sample : Math.min(this.min, sample);
    this.#recentMin.add(sample, now);
    if (this.srtt === undefined || this.rttvar === undefined) {
      this.srtt = sample;
      this.rttvar = sample / 2;
      return;
    }
    this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - sample);
    this.srtt = 0.875 * this.srtt + 0.125 * sample;
  }

  /**
   * Drops the older samples of the window when the newest {@link LEVEL_SHIFT_SAMPLES} are
   * all faster than every older one by the shift's margin: the link got faster (a degrade
   * healed, a queue drained). The base follows a fall at once anyway (it is the least
   * sample), but the jitter counted the old level as an excess over it for 3 s (a 100 ->
   * 50 ms heal reported 35 ms), which held a healed route's cost up; now for 1.5 s.
   * A faster PING is hard evidence: the tail of a jittery link only adds delay.
   * Rises do not restart the window (the base follows them after all 6 samples): three
   * slow PINGs in a row are a burst of a lossy link's tail as often as a real shift, and
   * following them took a replayed near-tie next to a lossy 300 ms link from 79 to 99 route
   * changes in 20 hours (packages/coordinator/test/jitter-flap.test.ts).
   */
  #restartAtLevelShift(): void {
    const n = this.#recent.length - LEVEL_SHIFT_SAMPLES;
    if (n < 1) return;
    const older = this.#recent.slice(0, n);
    const oldMin = Math.min(...older);
    const margin = Math.max(LEVEL_SHIFT_MS, LEVEL_SHIFT_RATIO * oldMin);
    if (oldMin - Math.max(...this.#recent.slice(n)) >= margin) this.#recent.splice(0, n);
  }

  /**
   * The least of the last {@link RTT_WINDOW_SAMPLES} samples: the path's base RTT without
   * the queueing and jitter that SRTT averages in. Routing compares paths by it (a path's
   * jitter is charged separately, from rttvar).
   */
  get windowMin(): number | undefined {
    return this.#recent.length === 0 ? undefined : Math.min(...this.#recent);
  }

  /**
   * Mean of the last {@link RTT_WINDOW_SAMPLES} samples minus their least: how far above
   * its base RTT the link has delivered over the last 3 s (per-packet jitter and queueing).
   * Routing charges it as the link's jitter, not `rttvar`: RFC 6298's rttvar measures
   * samples against SRTT, and after a queue drains SRTT takes ~17 s to come down from
   * 2 s to within 20 ms of the base (α = 1/8, two samples a second), so every steady
   * sample of that time counted as a swing of |SRTT - sample| and kept a healed link's
   * cost up for 25 s (docs/reliability.md). This figure forgets in 3 s; on a steady link
   * it is of rttvar's size (simulated on the world's jitter presets: mean +8 % on `cloud`,
   * -15 % on `lossy`).
   */
  get windowJitter(): number | undefined {
    if (this.#recent.length === 0) return undefined;
    let sum = 0;
    for (const s of this.#recent) sum += s;
    return sum / this.#recent.length - Math.min(...this.#recent);
  }

  /** The lowest sample of the last {@link MIN_RTT_WINDOW_MS} before `now`. */
  recentMin(now: number): number | undefined {
    return this.#recentMin.get(now);
  }
}

/** A snapshot of {@link RttEstimator}; all undefined until the first sample. */
export interface RttStats {
  srttMs: number | undefined;
  rttvarMs: number | undefined;
  minMs: number | undefined;
  /** {@link RttEstimator.windowMin}. */
  windowMinMs: number | undefined;
  /** {@link RttEstimator.windowJitter}. */
  windowJitterMs: number | undefined;
  /** Lowest sample of the last {@link MIN_RTT_WINDOW_MS}. */
  recentMinMs: number | undefined;
  lastMs: number | undefined;
  samples: number;
}
