import { EventEmitter } from 'node:events';
import {
  type Clock,
  F,
  Flag,
  type Frame,
  FrameType,
  type Logger,
  RelayError,
  silentLogger,
  systemClock,
  type TimerHandle,
  WireCode,
} from '@relaymesh/shared';
import { AcceptBacklog } from './accept-backlog.ts';
import { BASE_STREAM_WINDOW, type MuxConfig, resolveMuxConfig } from './config.ts';
import { Keepalive } from './keepalive.ts';
import { Scheduler, type StreamSendQueue } from './scheduler.ts';
import { MuxStream, type StreamHost } from './stream.ts';
import type { FrameTransport } from './transport.ts';
import {
  badInitialWindow,
  badStreamId,
  duplicateStream,
  goAwayCodeFor,
  neverOpened,
  rstOnData,
} from './violations.ts';
import { CreditBudget, processCreditBudget, ReceiveWindow, type RttStats } from './window.ts';

export type SessionRole = 'client' | 'server';
export type SessionState = 'open' | 'draining' | 'closed' | 'destroyed';

export interface SessionOptions {
  transport: FrameTransport;
  /** Client opens odd stream ids, server even. */
  role: SessionRole;
  logger?: Logger;
  clock?: Clock;
  config?: Partial<MuxConfig>;
  /** Process-level credit budget charged by this session. Default {@link processCreditBudget}. */
  creditBudget?: CreditBudget;
}

export interface CloseOptions {
  /** Aborting destroys the session with ERR_MUX_SESSION_CLOSED. */
  signal?: AbortSignal;
}

/** Answering pings stops while this much is queued: a peer that does not read gets none. */
const PONG_QUEUE_LIMIT = 4 * 1024 * 1024;

let sessionCounter = 0;

/**
 * A relaymux session: many {@link MuxStream}s over one {@link FrameTransport}
 * (docs/protocol.md, docs/lifecycle.md).
 *
 * Events: `'stream'` (MuxStream, inbound and accepted), `'goaway'` (WireCode sent by the
 * peer), `'rtt'` (sample in ms), `'error'` (at most once, only if a listener is attached:
 * a protocol violation, keepalive timeout, transport failure or `destroy(err)`), `'close'`.
 *
 * @throws RelayError ERR_CONFIG_INVALID from the constructor for a bad `config`.
 */
export class Session extends EventEmitter implements StreamHost {
  readonly role: SessionRole;
  readonly config: Readonly<MuxConfig>;
  readonly #transport: FrameTransport;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #budget: CreditBudget;
  readonly #scheduler: Scheduler;
  readonly #keepalive: Keepalive;
  readonly #streams = new Map<number, MuxStream>();
  readonly #backlog: AcceptBacklog;
  /** Every stream not yet destroyed, including wire-closed ones with unread data. */
  readonly #live = new Set<MuxStream>();
  #state: SessionState = 'open';
  #nextId: number;
  #lastPeerId = 0;
  #sentGoAway = false;
  #closing = false;
  #closeTimer: TimerHandle | undefined;
  #refused = 0;
  #finished = false;
  #bytesReceived = 0;
  readonly #closed: Promise<void>;
  #resolveClosed!: () => void;

  constructor(options: SessionOptions) {
    super();
    this.config = resolveMuxConfig(options.config);
    this.role = options.role;
    this.#transport = options.transport;
    this.#clock = options.clock ?? systemClock;
    this.#log = (options.logger ?? silentLogger()).child({
      [F.COMPONENT]: 'mux',
      [F.SESSION_ID]: ++sessionCounter,
      [F.REMOTE]: options.transport.description,
    });
    this.#budget = new CreditBudget(
      this.config.sessionCreditLimit,
      options.creditBudget ?? processCreditBudget,
    );
    this.#nextId = options.role === 'client' ? 1 : 2;
    this.#closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
    this.#scheduler = new Scheduler(this.#transport, this.config.dataFrameSize);
    this.#keepalive = this.#makeKeepalive();
    this.#backlog = new AcceptBacklog(this.config.acceptBacklog, this, (stream) =>
      this.#emitSafe('stream', stream),
    );
    this.#transport.start({
      frame: (f) => this.#guard(() => this.#onFrame(f)),
      error: (err) => this.#guard(() => this.#onTransportError(err)),
      drain: () => this.#guard(() => this.#scheduler.drain()),
      close: () => this.#guard(() => this.#onTransportClose()),
    });
    if (!this.#finished) this.#keepalive.start();
  }

  get state(): SessionState {
    return this.#state;
  }

  /** Streams currently in the table (both directions). */
  get streamCount(): number {
    return this.#streams.size;
  }

  /**
   * Receive windows reserved by this session's streams, in bytes: the most its peer can
   * make it buffer (charged to the session and process budgets).
   */
  get creditInUse(): number {
    return this.#budget.used;
  }

  get rttStats(): RttStats {
    return this.#keepalive.stats;
  }

  /**
   * DATA payload bytes received on every stream since the session began: what a capacity
   * probe divides by time, so the session's other traffic counts towards the link's rate.
   */
  get bytesReceived(): number {
    return this.#bytesReceived;
  }

  /**
   * Opens a stream (synchronous; sends WINDOW_UPDATE|SYN carrying our receive window).
   * Data may be written at once, before the peer's ACK.
   * The stream fails with ERR_MUX_OPEN_TIMEOUT if the peer does not ACK it within
   * openTimeoutMs.
   * @throws RelayError ERR_MUX_SESSION_CLOSED, ERR_MUX_GOING_AWAY, ERR_MUX_TOO_MANY_STREAMS
   *   (local limit or ids exhausted), ERR_MUX_MEMORY_LIMIT (credit budget exhausted).
   */
  open(): MuxStream {
    if (this.#state === 'closed' || this.#state === 'destroyed') {
      throw new RelayError('ERR_MUX_SESSION_CLOSED', `open on a ${this.#state} session`);
    }
    if (this.#state === 'draining') {
      throw new RelayError('ERR_MUX_GOING_AWAY', 'open on a draining session');
    }
    const max = this.config.maxConcurrentStreams;
    if (this.#streams.size >= max || this.#nextId > 0xffff_ffff) {
      throw new RelayError('ERR_MUX_TOO_MANY_STREAMS', `open with ${this.#streams.size} streams`, {
        details: { max },
      });
    }
    const window = this.config.initialStreamWindow;
    if (!this.#budget.tryReserve(window)) {
      throw new RelayError('ERR_MUX_MEMORY_LIMIT', `no credit budget for a ${window}-byte window`, {
        details: { available: this.#budget.available },
      });
    }
    const id = this.#nextId;
    this.#nextId += 2;
    const stream = this.#makeStream(id, BASE_STREAM_WINDOW);
    this.#streams.set(id, stream);
    this.#scheduler.control(FrameType.WINDOW_UPDATE, Flag.SYN, id, window);
    stream.armOpenTimer(this.#clock, this.config.openTimeoutMs);
    return stream;
  }

  /** An on-demand RTT sample in ms. Rejects with ERR_MUX_KEEPALIVE_TIMEOUT / ERR_MUX_SESSION_CLOSED. */
  ping(): Promise<number> {
    return this.#keepalive.ping();
  }

  /** Sends GO_AWAY: no new streams either way; open streams carry on. Idempotent. */
  goAway(code: WireCode = WireCode.NORMAL): void {
    if (this.#finished || this.#sentGoAway) return;
    this.#sentGoAway = true;
    if (this.#state === 'open') this.#state = 'draining';
    this.#scheduler.control(FrameType.GO_AWAY, Flag.NONE, 0, code);
    this.#log.info({ wireCode: code }, 'go-away sent');
  }

  /**
   * Graceful close: GO_AWAY, wait for open streams to finish (at most closeTimeoutMs, or
   * until `signal` aborts, then destroy), then end the transport. Resolves once closed.
   * Idempotent.
   */
  close(options: CloseOptions = {}): Promise<void> {
    if (this.#finished) return this.#closed;
    this.goAway();
    if (!this.#closing) {
      this.#closing = true;
      const abort = () =>
        this.destroy(new RelayError('ERR_MUX_SESSION_CLOSED', 'close did not finish in time'));
      this.#closeTimer = this.#clock.setTimeout(abort, this.config.closeTimeoutMs);
      const signal = options.signal;
      if (signal?.aborted) {
        abort();
        return this.#closed;
      }
      if (signal) {
        signal.addEventListener('abort', abort, { once: true });
        this.#closed.then(() => signal.removeEventListener('abort', abort));
      }
      this.#maybeEndTransport();
    }
    return this.#closed;
  }

  /**
   * Immediate teardown: every open stream is destroyed with `err` (default
   * ERR_MUX_SESSION_CLOSED), the transport is destroyed. Idempotent.
   */
  destroy(err?: Error): void {
    if (this.#finished) return;
    const streamErr = err ?? new RelayError('ERR_MUX_SESSION_CLOSED', 'session destroyed');
    this.#finish('destroyed', streamErr, err);
    this.#transport.destroy();
  }

  /** Resolves when the session is closed or destroyed. */
  get closed(): Promise<void> {
    return this.#closed;
  }

  // ---- StreamHost (called by MuxStream) ----

  /** @internal */
  enqueue(q: StreamSendQueue): void {
    this.#scheduler.enqueue(q);
  }

  /** @internal */
  sendWindowUpdate(streamId: number, delta: number): void {
    this.#scheduler.control(FrameType.WINDOW_UPDATE, Flag.NONE, streamId, delta);
  }

  /** @internal */
  sendReset(streamId: number, code: WireCode): boolean {
    if (this.#finished) return false;
    this.#scheduler.control(FrameType.WINDOW_UPDATE, Flag.RST, streamId, code);
    return true;
  }

  /** @internal */
  streamWireClosed(stream: MuxStream): void {
    if (this.#streams.get(stream.id) !== stream) return;
    this.#streams.delete(stream.id);
    this.#maybeEndTransport();
  }

  /** @internal */
  streamClosed(stream: MuxStream): void {
    if (!this.#live.delete(stream)) return;
    if (this.#streams.get(stream.id) === stream) this.#streams.delete(stream.id);
    this.#backlog.delete(stream);
    this.#budget.release(stream.reservedCredit);
    this.#maybeEndTransport();
  }

  // ---- receive path ----

  #onFrame(f: Frame): void {
    if (this.#finished) return;
    this.#keepalive.markRx();
    switch (f.type) {
      case FrameType.DATA:
        this.#onData(f);
        return;
      case FrameType.WINDOW_UPDATE:
        this.#onWindowUpdate(f);
        return;
      case FrameType.PING:
        this.#onPing(f);
        return;
      case FrameType.GO_AWAY:
        this.#onGoAway(f.length);
        return;
    }
  }

  #onData(f: Frame): void {
    this.#bytesReceived += f.payload.length;
    if ((f.flags & Flag.RST) !== 0) {
      this.#violation(rstOnData(f));
      return;
    }
    let stream: MuxStream | undefined;
    if ((f.flags & Flag.SYN) !== 0) {
      const opened = this.#onSyn(f.streamId, BASE_STREAM_WINDOW);
      if (opened === 'violation') return;
      stream = opened;
    } else {
      stream = this.#streams.get(f.streamId);
    }
    if (stream === undefined) {
      this.#unknownStream(f);
      return;
    }
    if ((f.flags & Flag.ACK) !== 0 && this.#check(stream.onAck(0))) return;
    this.#check(stream.onData(f.payload, (f.flags & Flag.FIN) !== 0));
  }

  #onWindowUpdate(f: Frame): void {
    if ((f.flags & Flag.RST) !== 0) {
      // Unknown stream: it is already gone here (a race), nothing to do.
      this.#streams.get(f.streamId)?.onReset(f.length);
      return;
    }
    const stream =
      (f.flags & Flag.SYN) !== 0 ? this.#synByWindowUpdate(f) : this.#updateExisting(f);
    if (stream !== undefined && (f.flags & Flag.FIN) !== 0) stream.onFin();
  }

  /** WINDOW_UPDATE|SYN: `length` is the opener's initial window. */
  #synByWindowUpdate(f: Frame): MuxStream | undefined {
    if (f.length < BASE_STREAM_WINDOW) {
      this.#badInitialWindow(f);
      return undefined;
    }
    const opened = this.#onSyn(f.streamId, f.length);
    return opened === 'violation' ? undefined : opened;
  }

  /** WINDOW_UPDATE (|ACK: `length` is the acceptor's initial window) on a known stream. */
  #updateExisting(f: Frame): MuxStream | undefined {
    const stream = this.#streams.get(f.streamId);
    if (stream === undefined) {
      this.#unknownStream(f);
      return undefined;
    }
    let err: RelayError | undefined;
    if ((f.flags & Flag.ACK) !== 0) {
      if (f.length < BASE_STREAM_WINDOW) {
        this.#badInitialWindow(f);
        return undefined;
      }
      err = stream.onAck(f.length - BASE_STREAM_WINDOW);
    } else {
      err = stream.onWindowUpdate(f.length);
    }
    return this.#check(err) ? undefined : stream;
  }

  #onPing(f: Frame): void {
    if ((f.flags & Flag.ACK) !== 0) {
      this.#keepalive.onPong(f.length);
      return;
    }
    if (this.#transport.bufferedAmount > PONG_QUEUE_LIMIT) return;
    this.#scheduler.control(FrameType.PING, Flag.ACK, 0, f.length);
  }

  #onGoAway(code: number): void {
    if (this.#state === 'open') this.#state = 'draining';
    this.#log.info({ wireCode: code }, 'go-away received');
    this.#emitSafe('goaway', code);
  }

  /**
   * A SYN for `id`. Returns the new stream, undefined when it was refused (RST sent), or
   * 'violation' (the session is being torn down).
   */
  #onSyn(id: number, peerWindow: number): MuxStream | undefined | 'violation' {
    if (this.#streams.has(id)) {
      this.#violation(duplicateStream(id));
      return 'violation';
    }
    const peerParity = this.role === 'client' ? 0 : 1;
    if (id % 2 !== peerParity || id <= this.#lastPeerId) {
      this.#violation(badStreamId(id, this.#lastPeerId));
      return 'violation';
    }
    this.#lastPeerId = id;
    const refusal = this.#admission();
    if (refusal !== undefined) {
      this.#refuse(id, refusal.code, refusal.reason);
      return undefined;
    }
    const stream = this.#makeStream(id, peerWindow);
    stream.markAccepted();
    this.#streams.set(id, stream);
    this.#scheduler.control(FrameType.WINDOW_UPDATE, Flag.ACK, id, this.config.initialStreamWindow);
    if (this.#refused > 0) {
      this.#log.info({ refused: this.#refused }, 'accepting inbound streams again');
      this.#refused = 0;
    }
    this.#backlog.deliver(stream);
    return stream;
  }

  /** Why a new inbound stream cannot be admitted now (reserves its credit if it can). */
  #admission(): { code: WireCode; reason: string } | undefined {
    if (this.#state !== 'open') return { code: WireCode.GOING_AWAY, reason: 'draining' };
    if (this.#streams.size >= this.config.maxConcurrentStreams) {
      return { code: WireCode.REFUSED_STREAM, reason: 'max concurrent streams reached' };
    }
    if (this.#backlog.full) {
      return { code: WireCode.REFUSED_STREAM, reason: 'accept backlog full' };
    }
    if (!this.#budget.tryReserve(this.config.initialStreamWindow)) {
      return { code: WireCode.MEMORY_LIMIT, reason: 'credit budget exhausted' };
    }
    return undefined;
  }

  /** RST for a stream we will not take; logged once per burst of refusals. */
  #refuse(id: number, code: WireCode, reason: string): void {
    this.#scheduler.control(FrameType.WINDOW_UPDATE, Flag.RST, id, code);
    if (this.#refused++ === 0) {
      this.#log.warn(
        {
          [F.STREAM_ID]: id,
          wireCode: code,
          reason,
          streams: this.#streams.size,
          backlog: this.#backlog.size,
        },
        'refusing inbound streams',
      );
    }
  }

  #unknownStream(f: Frame): void {
    const id = f.streamId;
    const ours = id % 2 === (this.role === 'client' ? 1 : 0);
    const unopened = ours ? id >= this.#nextId : id > this.#lastPeerId;
    // A closed stream (ids are never reused, so any lower id is closed): a late frame, ignore.
    if (!unopened) return;
    this.#violation(neverOpened(f));
  }

  #badInitialWindow(f: Frame): void {
    this.#violation(badInitialWindow(f));
  }

  /** Treats a returned stream error as a violation. True when there was one. */
  #check(err: RelayError | undefined): boolean {
    if (err === undefined) return false;
    this.#violation(err);
    return true;
  }

  /**
   * The peer broke the protocol: one warn line, GO_AWAY with PROTOCOL_ERROR or
   * FLOW_CONTROL_ERROR, every stream fails with ERR_MUX_SESSION_CLOSED (cause: `err`), the
   * session errors with `err`; the transport gets violationFlushMs to flush the GO_AWAY.
   */
  #violation(err: RelayError): void {
    if (this.#finished) return;
    const wire = goAwayCodeFor(err);
    this.#log.warn(
      { ...err.details, [F.CODE]: err.code, wireCode: wire },
      'peer violated relaymux',
    );
    this.#scheduler.control(FrameType.GO_AWAY, Flag.NONE, 0, wire);
    const streamErr = new RelayError('ERR_MUX_SESSION_CLOSED', `session failed: ${err.message}`, {
      cause: err,
    });
    this.#finish('destroyed', streamErr, err);
    this.#transport.end();
    const t = this.#clock.setTimeout(() => this.#transport.destroy(), this.config.violationFlushMs);
    this.#closed.then(() => this.#clock.clearTimeout(t));
  }

  #onTransportError(err: Error): void {
    if (err instanceof RelayError && err.code.startsWith('ERR_PROTOCOL_')) {
      this.#violation(err);
      return;
    }
    const wrapped = new RelayError('ERR_MUX_SESSION_CLOSED', `transport failed: ${err.message}`, {
      cause: err,
    });
    this.#log.warn({ err }, 'transport failed');
    this.#finish('destroyed', wrapped, wrapped);
  }

  #onTransportClose(): void {
    if (!this.#finished) {
      const clean = this.#streams.size === 0 && (this.#closing || this.#state === 'draining');
      const err = new RelayError('ERR_MUX_SESSION_CLOSED', 'transport closed under the session');
      this.#finish(clean ? 'closed' : 'destroyed', err, undefined);
    }
    this.#resolveClosed();
  }

  // ---- lifecycle ----

  #maybeEndTransport(): void {
    if (!this.#closing || this.#finished || this.#streams.size > 0) return;
    this.#finish('closed', new RelayError('ERR_MUX_SESSION_CLOSED', 'session closed'), undefined);
    this.#transport.end();
  }

  /** The one teardown path: runs once. `sessionErr` is emitted as 'error' if given. */
  #finish(state: SessionState, streamErr: Error, sessionErr: Error | undefined): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#state = state;
    if (this.#closeTimer !== undefined) this.#clock.clearTimeout(this.#closeTimer);
    this.#keepalive.stop(streamErr);
    // Streams still in the backlog belong to nobody yet: no 'error' for them. Streams
    // done on the wire (FIN both ways) keep their unread data and close when it is read.
    for (const stream of [...this.#streams.values()]) {
      stream.destroy(this.#backlog.has(stream) ? undefined : streamErr);
    }
    this.#streams.clear();
    this.#backlog.clear();
    this.#scheduler.close();
    this.#budget.release(this.#budget.used);
    if (sessionErr !== undefined && this.listenerCount('error') > 0) {
      this.#emitSafe('error', sessionErr);
    }
    this.#emitSafe('close');
    this.#log.debug({ state }, 'session finished');
  }

  // Every stream's ReceiveWindow reads the clock and RTT through these (not new closures).
  readonly #now = () => this.#clock.now();
  readonly #srtt = () => this.#keepalive.rtt.srtt;
  readonly #minRtt = () => this.#keepalive.rtt.recentMin(this.#clock.now());

  #makeStream(id: number, sendCredit: number): MuxStream {
    const recv = new ReceiveWindow({
      initial: this.config.initialStreamWindow,
      max: this.config.maxStreamWindow,
      budget: this.#budget,
      now: this.#now,
      srtt: this.#srtt,
      minRtt: this.#minRtt,
      queueBudgetMs: this.config.windowQueueBudgetMs,
    });
    const stream = new MuxStream({
      id,
      host: this,
      recv,
      sendCredit,
      sendQueueBytes: this.config.streamSendQueueBytes,
    });
    this.#live.add(stream);
    return stream;
  }

  #makeKeepalive(): Keepalive {
    return new Keepalive({
      clock: this.#clock,
      intervalMs: this.config.keepAliveIntervalMs,
      deadTimeoutMs: this.config.deadTimeoutMs,
      pingTimeoutMs: this.config.pingTimeoutMs,
      sendPing: (opaque) => this.#scheduler.control(FrameType.PING, Flag.SYN, 0, opaque),
      onDead: (silentMs) => {
        const why = `no frame from peer in ${silentMs} ms`;
        this.#log.warn({ silentMs }, 'peer silent: keepalive timeout');
        this.destroy(new RelayError('ERR_MUX_KEEPALIVE_TIMEOUT', why, { details: { silentMs } }));
      },
      onRtt: (ms) => this.#emitSafe('rtt', ms),
    });
  }

  /** Listeners run inside transport handlers, which must never throw. */
  #emitSafe(event: string, ...args: unknown[]): void {
    try {
      this.emit(event, ...args);
    } catch (err) {
      this.#log.error({ err, event }, 'session event listener threw');
    }
  }

  #guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.#log.error({ err }, 'mux internal error');
      this.destroy(new RelayError('ERR_INTERNAL', 'mux internal error', { cause: err }));
    }
  }
}
