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
  /** An address with no parked response, here or there, for this long comes back. */
  releaseMs: number;
  log: Logger;
}

/**
 * The entry's side of the slow lane (EntryServerOptions.slowLane): every 500 ms, sends the
 * client addresses holding `afterParked` parked responses to the lane and brings back
 * those that held none, here or there, for `releaseMs`. The lane process starts when an
 * address first needs it: a node that never meets slow clients never pays for it (twelve
 * nodes on one two-core host, each with a lane from the start, made the chaos suite miss
 * its failover bounds). Loading it at its low priority during a burst takes a while:
 * measured, the lane took the address 8.5 s into the burst, against 1.5-3.3 s with a lane
 * started in advance.
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
        this.#start(now);
        break;
      }
      this.#sources.set(e.source, now);
      this.#o.route(e.source, true);
      changed = true;
      log.info(
        { [F.REMOTE]: e.source, parked: e.parked, laneAfterParked: this.#o.afterParked },
        'client address sent to the slow lane',
      );
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

  #start(now: number): void {
    const { lane, log } = this.#o;
    if (lane.started || now < this.#retryAt) return;
    log.info('slow lane starting');
    lane.start().then(
      () => log.info({ pid: lane.stats.pid }, 'slow lane started'),
      (err: unknown) => {
        this.#retryAt = performance.now() + RETRY_MS;
        log.error({ err, retryInMs: RETRY_MS }, 'slow lane could not start');
      },
    );
  }
}
