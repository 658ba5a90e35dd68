import { F, type Logger } from '@relaymesh/shared';
import type { ParkedSources } from '../http/parked-sources.ts';
import type { SlowLane } from './slow-lane.ts';

/** How often the sources are sorted. */
const SORT_MS = 500;
/** A slow lane that could not start is tried again after this long. */
const RETRY_MS = 30_000;

export interface LaneSorterOptions {
  lane: SlowLane;
  /** The entry's parked responses per client address. */
  parked: ParkedSources;
  /** Tells the acceptor where the connections of `source` go from now on. */
  route(source: string, toLane: boolean): void;
  /** Parked responses of one address that send it to the lane. */
  afterParked: number;
  /** Connections of one address waiting in the acceptor that send it to the lane; 0: never. */
  afterWaiting: number;
  /** Connections one address opens within a second that send it to the lane; 0: never. */
  afterConnects: number;
  /** An address with no parked response, here or there, for this long comes back. */
  releaseMs: number;
  log: Logger;
}

/**
 * The entry's side of the slow lane (EntryServerOptions.slowLane): every 500 ms, sends the
 * client addresses holding `afterParked` parked responses to the lane and brings back
 * those that held none, here or there, for `releaseMs`; on the acceptor's reports, sends an
 * address with `afterWaiting` connections waiting for admission there at once. The lane
 * process starts when an address first needs it, or when the entry's gate first throttles
 * (warm()), or with the entry (`slowLaneStart: 'listen'`): a node that never meets a burst
 * never pays for it (in session 16, twelve nodes on one two-core host, each with a lane
 * from the start that loaded at the node's priority, made the chaos suite miss its
 * failover bounds). Loading it at its low priority during a burst takes seconds: started when the
 * first address needed it, the lane took the address 5.5-10.6 s into the burst; started
 * at the gate's first throttle, and sent a flood by its waiting connections, 0.5-1.5 s in
 * most runs, 3.3-5.3 s in some (docs/reliability.md, "The lane before the burst needs it").
 */
export class LaneSorter {
  readonly #o: LaneSorterOptions;
  /** Addresses in the lane, with when they last held a parked response. */
  readonly #sources = new Map<string, number>();
  readonly #timer: NodeJS.Timeout;
  /** A lane that could not start is tried again from then on (performance.now()). */
  #retryAt = 0;

  constructor(o: LaneSorterOptions) {
    this.#o = o;
    this.#timer = setInterval(() => this.#sort(), SORT_MS);
    this.#timer.unref();
  }

  /** The addresses in the lane now. */
  get sources(): string[] {
    return [...this.#sources.keys()];
  }

  /**
   * Starts the lane process ahead of need (the entry's loop is saturated: a burst, which
   * slow clients may be part of; or `slowLaneStart: 'listen'`), so that it is up when an
   * address first needs it. `reason` goes to the log.
   */
  warm(reason: string): void {
    this.#start(performance.now(), reason);
  }

  /**
   * The acceptor's report while connections wait for admission: `source` has `n` of them.
   * From `afterWaiting` on, the address goes to the lane at once (started first if need be):
   * a flood of connects costs the node its admissions before any of them could park.
   */
  waiting(source: string, n: number): void {
    const { afterWaiting } = this.#o;
    if (afterWaiting === 0 || n < afterWaiting) return;
    this.#flood(source, { waiting: n, laneAfterWaiting: afterWaiting });
  }

  /**
   * The acceptor's report that `source` opened `n` connections within a second, gate open
   * or not: from `afterConnects` on, the address goes to the lane at once, like a flood of
   * waiting connections, but before the gate has let hundreds of them in.
   */
  connects(source: string, n: number): void {
    const { afterConnects } = this.#o;
    if (afterConnects === 0 || n < afterConnects) return;
    this.#flood(source, { connects: n, laneAfterConnects: afterConnects });
  }

  /** A connect flood from `source`: to the lane now, or the lane starts (the next report sends it). */
  #flood(source: string, why: Record<string, number>): void {
    if (this.#sources.has(source)) return;
    const { lane } = this.#o;
    const now = performance.now();
    if (!lane.stats.up) {
      this.#start(now, 'a client address floods the entry');
      return;
    }
    this.#send(source, now, why);
    lane.watch(this.sources);
  }

  /** Sorts no more (the entry closes). */
  stop(): void {
    clearInterval(this.#timer);
  }

  #sort(): void {
    const { lane, parked, log } = this.#o;
    const now = performance.now();
    let changed = false;
    for (const e of parked.atLeast(this.#o.afterParked)) {
      if (this.#sources.has(e.source)) continue;
      // The first address to need the lane starts it; until it serves (starting, replaced
      // after a death, or failed to start and tried again), addresses stay here.
      if (!lane.stats.up) {
        this.#start(now, 'a client address holds parked responses');
        break;
      }
      this.#send(e.source, now, { parked: e.parked, laneAfterParked: this.#o.afterParked });
      changed = true;
    }
    for (const [source, since] of this.#sources) {
      if (parked.of(source) + lane.parkedFrom(source) > 0) {
        this.#sources.set(source, now);
      } else if (now - since >= this.#o.releaseMs) {
        this.#sources.delete(source);
        this.#o.route(source, false);
        changed = true;
        log.info({ [F.REMOTE]: source }, 'client address back from the slow lane');
      }
    }
    if (changed) lane.watch(this.sources);
  }

  #send(source: string, now: number, why: Record<string, number>): void {
    this.#sources.set(source, now);
    this.#o.route(source, true);
    this.#o.log.info({ [F.REMOTE]: source, ...why }, 'client address sent to the slow lane');
  }

  #start(now: number, reason: string): void {
    const { lane, log } = this.#o;
    if (lane.started || now < this.#retryAt) return;
    log.info({ reason }, 'slow lane starting');
    lane.start().then(
      () =>
        log.info(
          { pid: lane.stats.pid, idle: lane.stats.idle, cpus: lane.stats.cpus },
          'slow lane started',
        ),
      (err: unknown) => {
        this.#retryAt = performance.now() + RETRY_MS;
        log.error({ err, retryInMs: RETRY_MS }, 'slow lane could not start');
      },
    );
  }
}
