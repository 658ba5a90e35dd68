/** Jittered exponential backoff settings. */
export interface BackoffOptions {
  /** First delay. @default 200 */
  initialMs?: number;
  /** Growth per attempt. @default 1.6 */
  multiplier?: number;
  /** Upper bound of a delay before jitter. @default 30000 */
  maxMs?: number;
  /** Fraction of the delay drawn at random either side. @default 0.2 */
  jitter?: number;
  /** Random source in [0,1); injectable for tests. @default Math.random */
  random?: () => number;
}

/**
 * Delays for reconnect loops: initial * multiplier^attempt, capped, +/- jitter (the shape
 * of gRPC's connection backoff). Call `next()` per failure and `reset()` after a success.
 */
export class Backoff {
  readonly #initial: number;
  readonly #multiplier: number;
  readonly #max: number;
  readonly #jitter: number;
  readonly #random: () => number;
  #attempt = 0;

  constructor(options: BackoffOptions = {}) {
    this.#initial = options.initialMs ?? 200;
    this.#multiplier = options.multiplier ?? 1.6;
    this.#max = options.maxMs ?? 30_000;
    this.#jitter = options.jitter ?? 0.2;
    this.#random = options.random ?? Math.random;
  }

  get attempt(): number {
    return this.#attempt;
  }

  next(): number {
    const base = Math.min(this.#max, this.#initial * this.#multiplier ** this.#attempt);
    this.#attempt++;
    const spread = base * this.#jitter * (2 * this.#random() - 1);
    return Math.max(0, Math.round(base + spread));
  }

  reset(): void {
    this.#attempt = 0;
  }
}
