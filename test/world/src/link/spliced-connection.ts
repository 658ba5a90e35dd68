import type net from 'node:net';
import { type Logger, silentLogger } from '@relaymesh/shared';
import type { LinkDirection } from './link-direction.ts';
import type { DelayScheduler } from './scheduler.ts';
import { ShapedPipe } from './shaped-pipe.ts';

/**
 * A client connection spliced to its destination through two shaped directions:
 *
 * ```
 * client ──up (from → to)──> destination
 *        <──down (to → from)──
 * ```
 *
 * A clean FIN travels through the pipe like data. A reset or error on one side reaches the
 * other after the one-way delay, as an RST would.
 */
export class SplicedConnection {
  readonly from: string;
  readonly to: string;
  readonly #client: net.Socket;
  readonly #upstream: net.Socket;
  readonly #up: ShapedPipe;
  readonly #down: ShapedPipe;
  readonly #upLink: LinkDirection;
  readonly #downLink: LinkDirection;
  readonly #scheduler: DelayScheduler;
  readonly #onClosed: (c: SplicedConnection) => void;
  readonly #log: Logger;
  #closedSockets = 0;
  #done = false;

  constructor(args: {
    client: net.Socket;
    upstream: net.Socket;
    up: LinkDirection;
    down: LinkDirection;
    scheduler: DelayScheduler;
    onClosed: (c: SplicedConnection) => void;
    logger?: Logger;
  }) {
    this.#log = args.logger ?? silentLogger();
    this.from = args.up.from;
    this.to = args.up.to;
    this.#client = args.client;
    this.#upstream = args.upstream;
    this.#upLink = args.up;
    this.#downLink = args.down;
    this.#scheduler = args.scheduler;
    this.#onClosed = args.onClosed;
    this.#up = new ShapedPipe(args.client, args.upstream, args.up, args.scheduler);
    this.#down = new ShapedPipe(args.upstream, args.client, args.down, args.scheduler);
  }

  /** Starts both directions; `clientBytes` were read with the CONNECT head. */
  start(clientBytes: Buffer): void {
    this.#watch(this.#client, this.#upstream, this.#upLink, 'client');
    this.#watch(this.#upstream, this.#client, this.#downLink, 'destination');
    this.#up.start(clientBytes);
    this.#down.start();
  }

  /** Kills both sides with RST now (the `reset` fault); idempotent. */
  reset(): void {
    this.#finish();
    this.#client.resetAndDestroy();
    this.#upstream.resetAndDestroy();
  }

  #watch(
    socket: net.Socket,
    other: net.Socket,
    towardOther: LinkDirection,
    side: 'client' | 'destination',
  ): void {
    let error: string | undefined;
    socket.on('error', (err: NodeJS.ErrnoException) => {
      error = err.code ?? err.message;
    });
    socket.once('close', (hadError: boolean) => {
      this.#closedSockets++;
      if (hadError || !socket.readableEnded) {
        if (!this.#done)
          this.#log.info(
            {
              from: this.from,
              to: this.to,
              side,
              error,
              heldUp: this.#up.heldBytes,
              heldDown: this.#down.heldBytes,
            },
            'connection closed without FIN: resetting the other side',
          );
        // No FIN came: the peer reset or vanished. Tell the other side one trip later.
        this.#finish();
        this.#scheduler.schedule(this.#scheduler.now() + towardOther.oneWayMs, () =>
          other.resetAndDestroy(),
        );
      }
      if (this.#closedSockets === 2) this.#finish();
    });
  }

  #finish(): void {
    if (this.#done) return;
    this.#done = true;
    this.#up.stop();
    this.#down.stop();
    this.#onClosed(this);
  }
}
