import type * as grpc from '@grpc/grpc-js';
import type {
  CoordinatorMessage,
  Logger,
  Membership,
  NodeMessage__Output,
  RouteTable,
} from '@relaymesh/shared';

export type SessionCall = grpc.ServerDuplexStream<NodeMessage__Output, CoordinatorMessage>;

/**
 * The coordinator's end of one node's session stream. Outgoing messages are coalesced:
 * at most one pending membership and one pending route table, the latest of each, so a
 * slow node costs bounded memory and gets the newest state when it catches up ('drain').
 */
export class NodeSession {
  readonly nodeId: string;
  readonly sessionId: string;
  readonly #call: SessionCall;
  readonly #logger: Logger;
  #membership: Membership | undefined;
  #routes: RouteTable | undefined;
  #waitingDrain = false;
  #ended = false;

  constructor(call: SessionCall, nodeId: string, sessionId: string, logger: Logger) {
    this.#call = call;
    this.nodeId = nodeId;
    this.sessionId = sessionId;
    this.#logger = logger;
  }

  get ended(): boolean {
    return this.#ended;
  }

  sendMembership(m: Membership): void {
    this.#membership = m;
    this.#flush();
  }

  sendRoutes(t: RouteTable): void {
    this.#routes = t;
    this.#flush();
  }

  #flush(): void {
    while (!this.#ended && !this.#waitingDrain) {
      let msg: CoordinatorMessage;
      // Membership first: routes may name peers the node has not heard of yet.
      if (this.#membership !== undefined) {
        msg = { membership: this.#membership };
        this.#membership = undefined;
      } else if (this.#routes !== undefined) {
        msg = { routes: this.#routes };
        this.#routes = undefined;
      } else {
        return;
      }
      if (!this.#call.write(msg)) {
        this.#waitingDrain = true;
        this.#call.once('drain', () => {
          this.#waitingDrain = false;
          this.#flush();
        });
      }
    }
  }

  /** Ends the stream with OK (graceful) or with the given status. Idempotent. */
  end(status?: Partial<grpc.StatusObject>): void {
    if (this.#ended) return;
    this.#ended = true;
    try {
      if (status === undefined) this.#call.end();
      else this.#call.emit('error', status);
    } catch (err) {
      this.#logger.debug({ err }, 'session stream already gone');
    }
  }

  /** Marks the session over without touching the (already finished) stream. */
  detach(): void {
    this.#ended = true;
  }
}
