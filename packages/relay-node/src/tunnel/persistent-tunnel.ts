import { EventEmitter } from 'node:events';
import {
  Backoff,
  type BackoffOptions,
  type Clock,
  F,
  isRelayError,
  type Logger,
  RelayError,
  type TimerHandle,
} from '@relaymesh/shared';
import type { TunnelDialer } from './dialer.ts';
import type { Tunnel } from './tunnel.ts';

export interface PersistentTunnelOptions {
  dialer: TunnelDialer;
  /** The peer's advertised `ws://host:port`. */
  url: string;
  /** See {@link DialTunnelOptions.expectedPeerNodeId}. */
  expectedPeerNodeId?: string;
  /** @default { initialMs: 200, multiplier: 1.6, maxMs: 30000, jitter: 0.2 } */
  backoff?: BackoffOptions;
  /**
   * Least delay after a non-retryable failure (wrong token, version, peer mismatch,
   * refused upgrade): those need an operator, not a fast retry. @default 60000
   */
  nonRetryableDelayMs?: number;
  /** @default the dialer's clock */
  clock?: Clock;
  /** @default the dialer's logger */
  logger?: Logger;
}

export type PersistentTunnelState = 'connecting' | 'up' | 'waiting' | 'closed';

/** What the 'retry' event carries. */
export interface RetryInfo {
  /** Failures in a row since the last successful hello. */
  attempt: number;
  delayMs: number;
  err: Error | undefined;
}

const DEFAULT_NON_RETRYABLE_DELAY_MS = 60_000;

/**
 * Keeps one tunnel to one peer up: dial, and after a failure or a tunnel that went down,
 * dial again after a jittered exponential backoff (200 ms x1.6 up to 30 s, +/-20 %), reset
 * after each successful hello. Dead peers are found by the mux keepalive (no bytes for
 * deadTimeoutMs: the Session ends, the tunnel goes down, we redial).
 *
 * Events: `'up'` (Tunnel), `'down'` (err | undefined) when a live tunnel ends,
 * `'retry'` ({@link RetryInfo}) before each wait. Starts dialing on the next tick.
 */
export class PersistentTunnel extends EventEmitter {
  readonly #opts: PersistentTunnelOptions;
  readonly #backoff: Backoff;
  readonly #clock: Clock;
  readonly #log: Logger;
  #state: PersistentTunnelState = 'connecting';
  #current: Tunnel | undefined;
  #timer: TimerHandle | undefined;
  #abort: AbortController | undefined;
  #failures = 0;

  constructor(options: PersistentTunnelOptions) {
    super();
    this.#opts = options;
    this.#backoff = new Backoff(options.backoff);
    this.#clock = options.clock ?? options.dialer.clock;
    this.#log = (options.logger ?? options.dialer.logger).child({
      [F.COMPONENT]: 'persistent-tunnel',
      url: options.url,
    });
    queueMicrotask(() => this.#connect());
  }

  get state(): PersistentTunnelState {
    return this.#state;
  }

  /** The live tunnel, if one is up. */
  get current(): Tunnel | undefined {
    return this.#current;
  }

  /** Stops reconnecting and closes the live tunnel gracefully (GO_AWAY, drain). Idempotent. */
  async close(): Promise<void> {
    const t = this.#stop();
    if (t) await t.close().catch(() => {});
  }

  /** Stops reconnecting and destroys the live tunnel at once. Idempotent. */
  destroy(err?: Error): void {
    this.#stop()?.destroy(err);
  }

  #stop(): Tunnel | undefined {
    if (this.#state === 'closed') return undefined;
    this.#state = 'closed';
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#abort?.abort(new RelayError('ERR_CLOSED', 'persistent tunnel closed'));
    const t = this.#current;
    this.#current = undefined;
    return t;
  }

  #connect(): void {
    if (this.#state === 'closed') return;
    this.#state = 'connecting';
    this.#timer = undefined;
    const abort = new AbortController();
    this.#abort = abort;
    const dialOpts = {
      signal: abort.signal,
      ...(this.#opts.expectedPeerNodeId !== undefined
        ? { expectedPeerNodeId: this.#opts.expectedPeerNodeId }
        : {}),
    };
    this.#opts.dialer.dial(this.#opts.url, dialOpts).then(
      (tunnel) => this.#onUp(tunnel),
      (err: Error) => {
        if (this.#state !== 'closed') this.#retry(err, false);
      },
    );
  }

  #onUp(tunnel: Tunnel): void {
    if (this.#state === 'closed') {
      tunnel.destroy();
      return;
    }
    this.#backoff.reset();
    this.#failures = 0;
    this.#state = 'up';
    this.#current = tunnel;
    tunnel.once('close', (err: Error | undefined) => {
      if (this.#current !== tunnel) return;
      this.#current = undefined;
      this.#emitSafe('down', err);
      if (this.#state !== 'closed') this.#retry(err, true);
    });
    this.#emitSafe('up', tunnel);
  }

  /** `afterDown`: the tunnel itself already logged why it ended. */
  #retry(err: Error | undefined, afterDown: boolean): void {
    this.#failures++;
    let delayMs = this.#backoff.next();
    const retryable = err === undefined || !isRelayError(err) || (err as RelayError).retryable;
    const code = isRelayError(err) ? (err as RelayError).code : undefined;
    if (!retryable) {
      delayMs = Math.max(delayMs, this.#opts.nonRetryableDelayMs ?? DEFAULT_NON_RETRYABLE_DELAY_MS);
      this.#log.error(
        { [F.CODE]: code, reason: err?.message, delayMs },
        'tunnel refused for a reason a retry will not fix',
      );
    } else if (err !== undefined && !afterDown) {
      this.#log.warn({ [F.CODE]: code, reason: err.message, delayMs }, 'tunnel dial failed');
    }
    this.#state = 'waiting';
    this.#emitSafe('retry', { attempt: this.#failures, delayMs, err } satisfies RetryInfo);
    if (this.#state === 'waiting')
      this.#timer = this.#clock.setTimeout(() => this.#connect(), delayMs);
  }

  #emitSafe(event: string, ...args: unknown[]): void {
    try {
      this.emit(event, ...args);
    } catch (e) {
      this.#log.error({ err: e, event }, 'persistent tunnel listener threw');
    }
  }
}
