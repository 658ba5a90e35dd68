import type { EventEmitter } from 'node:events';
import type { MuxStream } from './stream.ts';

/**
 * Inbound streams that arrived while nobody listens for the session's 'stream' event: held
 * in arrival order and handed over (in a microtask) once a listener is added. Bounded like yamux's accept
 * backlog: when {@link full}, the session refuses a new stream with RST REFUSED_STREAM
 * instead of queueing it.
 */
export class AcceptBacklog {
  readonly #limit: number;
  readonly #session: EventEmitter;
  readonly #handOver: (stream: MuxStream) => void;
  readonly #waiting = new Set<MuxStream>();

  /**
   * @param limit most streams held (MuxConfig.acceptBacklog)
   * @param session the emitter of 'stream' (its listeners are watched)
   * @param handOver gives a stream to the listeners
   */
  constructor(limit: number, session: EventEmitter, handOver: (stream: MuxStream) => void) {
    this.#limit = limit;
    this.#session = session;
    this.#handOver = handOver;
    session.on('newListener', (event) => {
      if (event === 'stream') queueMicrotask(() => this.#drain());
    });
  }

  get size(): number {
    return this.#waiting.size;
  }

  /** Nobody listens and `limit` streams wait: a new inbound stream must be refused. */
  get full(): boolean {
    return !this.#listening && this.#waiting.size >= this.#limit;
  }

  /** A stream still waiting belongs to nobody yet (the session closes it without 'error'). */
  has(stream: MuxStream): boolean {
    return this.#waiting.has(stream);
  }

  /** Hands `stream` over now if someone listens, else holds it. */
  deliver(stream: MuxStream): void {
    if (this.#listening) this.#handOver(stream);
    else this.#waiting.add(stream);
  }

  /** Hands over the waiting streams, in order, while someone listens. */
  #drain(): void {
    for (const stream of this.#waiting) {
      if (!this.#listening) return;
      this.#waiting.delete(stream);
      this.#handOver(stream);
    }
  }

  get #listening(): boolean {
    return this.#session.listenerCount('stream') > 0;
  }

  delete(stream: MuxStream): void {
    this.#waiting.delete(stream);
  }

  clear(): void {
    this.#waiting.clear();
  }
}
