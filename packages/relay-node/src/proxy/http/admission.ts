import type { Socket } from 'node:net';
import { type EventLoopUtilization, performance } from 'node:perf_hooks';
import { FairQueue } from './fair-queue.ts';

export interface AdmissionOptions {
  /**
   * New connections let in per second while the event loop is saturated (the rate never
   * falls below this). 0: no gate, every connection goes in as it is accepted.
   */
  busyRate: number;
  /** Event-loop utilisation over a slice from which the loop counts as saturated. @default 0.9 */
  busyUtilization?: number;
  /** Length of the slices the utilisation is measured over, in ms. @default 100 */
  sliceMs?: number;
  /** Hands an admitted connection (still paused) to the server. */
  admit: (socket: Socket) => void;
  /**
   * The waiting connections are in another process (the acceptor, acceptor.ts): the gate
   * tells it whether to hand every connection over as it comes (open) or one per credit.
   * The acceptor then calls {@link AdmissionGate.arrived} and {@link AdmissionGate.waiting}
   * instead of {@link AdmissionGate.offer}.
   */
  remote?: { setOpen(open: boolean): void; credit(n: number): void };
  /** A connection had to wait, the first since the gate was last open: the rate in force. */
  onThrottled?: (e: { rate: number }) => void;
  /**
   * The gate is open again after connections waited: how many waited, the longest wait, and
   * how long since the first had to. Sampled lazily: at the first connection (or pump)
   * after the loop has been quiet long enough.
   */
  onOpen?: (e: { waited: number; maxWaitMs: number; durationMs: number }) => void;
}

export interface AdmissionStats {
  /** Connections accepted so far (by the acceptor process, when there is one). */
  accepted: number;
  /** Connections let in so far. */
  admitted: number;
  /** Connections waiting now, and the most that ever waited at once. */
  queued: number;
  queuedPeak: number;
  /** The longest wait so far, in ms. */
  maxWaitMs: number;
  /** The rate in force (connections/s; Infinity: open). */
  rate: number;
}

/** Past this many times the floor the gate is open again. */
const OPEN_AT = 16;
/** Below this utilisation the loop counts as mostly idle. */
const IDLE = 0.5;

interface Waiting {
  socket: Socket;
  at: number;
  onError: () => void;
}

/**
 * Admission of new client connections (docs/reliability.md "Slow clients"). A new
 * connection costs the entry ~1.3 ms of CPU (request parse, origin connection, the first
 * ~130 KiB of body, the park); 10,000 clients connecting at once take the whole event loop
 * for seconds, and the connections already open, whose streams share that loop, slow to a
 * fifth of their rate. The gate keeps the loop for them: while the loop is saturated
 * (utilisation ≥ `busyUtilization` over the last slice) the admission rate falls to half the
 * rate connections went in during that slice (not below `busyRate`); while it is not, the
 * rate probes up by `busyRate` a second, or doubles each slice while the loop is mostly idle
 * (utilisation < 0.5) and no connection waits, and past 16 × `busyRate` the gate is open
 * again. Connections over the rate wait, accepted and paused (nothing is read from them, so
 * no request starts), in one queue per source address, let in round-robin: a client from
 * another address waits for one turn, not behind the flood. The queues hold at most the
 * server's `maxConnections` (net.Server counts a socket from its accept). Like HAProxy's
 * `rate-limit sessions`, but adaptive, and fair by source. With an acceptor process
 * (`remote`) the queues live there: the gate tells it whether it is open and grants it
 * credits from the same token bucket.
 */
export class AdmissionGate {
  readonly #busyRate: number;
  readonly #busyUtil: number;
  readonly #sliceMs: number;
  readonly #admit: (socket: Socket) => void;
  /** Waiting connections, round-robin by source address. */
  readonly #queue = new FairQueue<Waiting>();
  #rate = Number.POSITIVE_INFINITY;
  #tokens = 0;
  #refilledAt = performance.now();
  #sliceAt = performance.now();
  #elu: EventLoopUtilization = performance.eventLoopUtilization();
  /** Let in since the last sample: what a saturated slice's rate is halved from. */
  #admittedInSlice = 0;
  #timer: NodeJS.Timeout | undefined;
  #immediate: NodeJS.Immediate | undefined;
  #closed = false;
  readonly #stats = { accepted: 0, admitted: 0, queuedPeak: 0, maxWaitMs: 0 };
  readonly #remote: AdmissionOptions['remote'];
  /** Remote: connections waiting in the acceptor (as last heard), and credits not used yet. */
  #remoteWaiting = 0;
  #credits = 0;
  #remoteOpen = true;
  /** Since the first connection waited, until the gate is open again. */
  #episode: { startedAt: number; waited: number; maxWaitMs: number } | undefined;
  readonly #onThrottled: AdmissionOptions['onThrottled'];
  readonly #onOpen: AdmissionOptions['onOpen'];

  constructor(o: AdmissionOptions) {
    this.#busyRate = o.busyRate;
    this.#busyUtil = o.busyUtilization ?? 0.9;
    this.#sliceMs = o.sliceMs ?? 100;
    this.#admit = o.admit;
    this.#remote = o.remote;
    this.#onThrottled = o.onThrottled;
    this.#onOpen = o.onOpen;
  }

  get stats(): AdmissionStats {
    const queued = this.#remote ? this.#remoteWaiting : this.#queue.size;
    return { ...this.#stats, queued, rate: this.#rate };
  }

  /** Connections that wait for the gate: remote, those with no credit yet while throttled. */
  #pending(): number {
    if (!this.#remote) return this.#queue.size;
    if (this.#rate === Number.POSITIVE_INFINITY) return 0; // the acceptor hands them over
    return Math.max(0, this.#remoteWaiting - this.#credits);
  }

  /**
   * Remote: the acceptor handed over a connection, as the gate allowed (open, or on a
   * credit); `waiting` is how many still wait there, `accepted` its count so far.
   */
  arrived(
    socket: Socket,
    e: { waitedMs: number; credited: boolean; waiting: number; accepted: number },
  ): void {
    if (this.#closed) {
      socket.destroy();
      return;
    }
    if (e.credited && this.#credits > 0) this.#credits--;
    this.#stats.accepted = Math.max(this.#stats.accepted, e.accepted);
    if (e.waitedMs > this.#stats.maxWaitMs) this.#stats.maxWaitMs = e.waitedMs;
    if (this.#episode) {
      if (e.credited) this.#episode.waited++;
      if (e.waitedMs > this.#episode.maxWaitMs) this.#episode.maxWaitMs = e.waitedMs;
    }
    this.#letIn(socket);
    this.waiting(e.waiting, e.accepted);
  }

  /** Remote: connections waiting in the acceptor now (a report, or with a connection). */
  waiting(n: number, accepted: number): void {
    if (this.#closed) return;
    this.#remoteWaiting = n;
    this.#stats.accepted = Math.max(this.#stats.accepted, accepted);
    if (n > this.#stats.queuedPeak) this.#stats.queuedPeak = n;
    const now = performance.now();
    this.#sample(now);
    if (n > 0 && !this.#episode && this.#rate !== Number.POSITIVE_INFINITY) {
      this.#episode = { startedAt: now, waited: 0, maxWaitMs: 0 };
      this.#onThrottled?.({ rate: this.#rate });
    }
    // Throttled: top the acceptor's credits up to what the tokens allow.
    if (this.#rate !== Number.POSITIVE_INFINITY) this.#pump();
    else this.#schedule();
  }

  /** Remote: the acceptor process was replaced; what waited there is gone. */
  remoteReset(): void {
    this.#remoteWaiting = 0;
    this.#credits = 0;
    this.#remoteOpen = true;
    this.#syncRemote();
  }

  /** Tells the acceptor whether the gate is open, when that changed. */
  #syncRemote(): void {
    if (!this.#remote) return;
    const open = this.#rate === Number.POSITIVE_INFINITY;
    if (open === this.#remoteOpen) return;
    this.#remoteOpen = open;
    if (open) this.#credits = 0;
    this.#remote.setOpen(open);
  }

  /** A connection just accepted (paused): lets it in now or queues it. */
  offer(socket: Socket): void {
    this.#stats.accepted++;
    if (this.#closed) {
      socket.destroy();
      return;
    }
    if (this.#busyRate === 0) {
      this.#letIn(socket);
      return;
    }
    const now = performance.now();
    this.#sample(now);
    if (this.#queue.size === 0 && this.#take(now)) {
      this.#letIn(socket);
      return;
    }
    const w: Waiting = { socket, at: now, onError: () => socket.destroy() };
    // A paused socket reads nothing, but a write error or a reset can still come.
    socket.on('error', w.onError);
    this.#queue.push(w);
    if (this.#queue.size > this.#stats.queuedPeak) this.#stats.queuedPeak = this.#queue.size;
    if (!this.#episode) {
      this.#episode = { startedAt: now, waited: 0, maxWaitMs: 0 };
      this.#onThrottled?.({ rate: this.#rate });
    }
    this.#episode.waited++;
    this.#schedule();
  }

  /** Closes every waiting connection and lets no more in. Idempotent. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    if (this.#immediate) clearImmediate(this.#immediate);
    for (const w of this.#queue.clear()) {
      w.socket.off('error', w.onError);
      w.socket.destroy();
    }
  }

  /** Per slice: the loop's utilisation since the last one sets the rate. */
  #sample(now: number): void {
    if (this.#busyRate === 0 || now - this.#sliceAt < this.#sliceMs) return;
    const elu = performance.eventLoopUtilization(this.#elu);
    this.#elu = performance.eventLoopUtilization();
    this.#sliceAt = now;
    const admitted = this.#admittedInSlice;
    this.#admittedInSlice = 0;
    const slices = (elu.idle + elu.active) / this.#sliceMs;
    if (elu.utilization >= this.#busyUtil) {
      // Half of what went in during the slice (not the nominal rate, which may be infinite
      // or far above what the loop managed), not below the floor.
      const recent = admitted / Math.max(0.001, (elu.idle + elu.active) / 1000);
      this.#rate = Math.max(this.#busyRate, Math.min(this.#rate, recent) / 2);
      this.#tokens = Math.min(this.#tokens, this.#bucket());
      const over = this.#credits - Math.floor(this.#bucket());
      if (this.#remote && over > 0 && !this.#remoteOpen) {
        this.#credits -= over;
        this.#remote.credit(-over);
      }
    } else if (this.#rate !== Number.POSITIVE_INFINITY) {
      // Sampled lazily (on a connection, or while some wait): a long quiet spell counts as
      // that many slices. Mostly idle with nobody waiting: doubles per slice; else probes up
      // by a tenth of the floor per slice (the floor per second). Doubling while a flood
      // waited let bursts of 700-1,000/s in between busy slices.
      if (elu.utilization < IDLE && this.stats.queued === 0)
        this.#rate *= 2 ** Math.min(slices, 30);
      else this.#rate += (this.#busyRate * slices) / 10;
      if (this.#rate > OPEN_AT * this.#busyRate) this.#rate = Number.POSITIVE_INFINITY;
    }
    this.#syncRemote();
    if (this.#rate === Number.POSITIVE_INFINITY && this.#episode && this.stats.queued === 0) {
      const { startedAt, waited, maxWaitMs } = this.#episode;
      this.#episode = undefined;
      this.#onOpen?.({ waited, maxWaitMs, durationMs: now - startedAt });
    }
  }

  /** At most one slice's worth of admissions in a burst (at least one). */
  #bucket(): number {
    return Math.max(1, (this.#rate * this.#sliceMs) / 1000);
  }

  #take(now: number): boolean {
    if (this.#rate === Number.POSITIVE_INFINITY) return true;
    this.#tokens = Math.min(
      this.#bucket(),
      this.#tokens + ((now - this.#refilledAt) * this.#rate) / 1000,
    );
    this.#refilledAt = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  #letIn(socket: Socket): void {
    this.#stats.admitted++;
    this.#admittedInSlice++;
    this.#admit(socket);
  }

  #schedule(): void {
    if (this.#timer || this.#immediate || this.#pending() === 0 || this.#closed) return;
    if (this.#rate === Number.POSITIVE_INFINITY) {
      this.#immediate = setImmediate(() => {
        this.#immediate = undefined;
        this.#pump();
      });
      return;
    }
    // The next token, at least 1 ms away (timers round up anyway).
    const wait = Math.max(1, Math.ceil(((1 - this.#tokens) * 1000) / this.#rate));
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#pump();
    }, wait);
  }

  /**
   * Lets in what the rate allows, one per source address in turn; at most 64 per call when
   * the gate is open, so a long queue is let in over several loop turns.
   */
  #pump(): void {
    const now = performance.now();
    this.#sample(now);
    if (this.#remote) {
      // Open: the acceptor hands everything over by itself. Throttled: one credit a token,
      // granted ahead up to the bucket, so that a connection coming while tokens are left
      // goes in at once (as it would inline), not after a round trip to ask for one.
      let n = 0;
      if (this.#rate !== Number.POSITIVE_INFINITY) {
        const want = Math.max(this.#remoteWaiting, Math.floor(this.#bucket()));
        while (this.#credits + n < want && this.#take(now)) n++;
      }
      if (n > 0) {
        this.#credits += n;
        this.#remote.credit(n);
      }
      this.#schedule();
      return;
    }
    for (let n = 0; this.#queue.size > 0 && n < 64 && this.#take(now); n++) {
      // Destroyed while waiting (a socket error): skipped.
      const w = this.#queue.shift(unhook);
      if (!w) {
        this.#tokens += 1; // every one left had closed
        break;
      }
      const waited = now - w.at;
      if (waited > this.#stats.maxWaitMs) this.#stats.maxWaitMs = waited;
      if (this.#episode && waited > this.#episode.maxWaitMs) this.#episode.maxWaitMs = waited;
      unhook(w);
      this.#letIn(w.socket);
    }
    this.#schedule();
  }
}

/** A waiting connection leaves the queue: its error listener goes with it. */
function unhook(w: Waiting): void {
  w.socket.off('error', w.onError);
}
