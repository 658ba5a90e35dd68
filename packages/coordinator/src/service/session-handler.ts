import {
  type Clock,
  F,
  type Logger,
  type NodeMessage__Output,
  RelayError,
  toGrpcStatus,
} from '@relaymesh/shared';
import type { OriginSample, PeerSample } from '../matrix/latency-matrix.ts';
import type { Registry } from '../membership/registry.ts';
import { NodeSession, type SessionCall } from './session.ts';

/** How long a new stream may take to send its SessionHello. */
const HELLO_TIMEOUT_MS = 10_000;

export interface SessionHandlerOptions {
  registry: Registry;
  logger: Logger;
  clock: Clock;
  onReport(nodeId: string, peers: PeerSample[], origins: OriginSample[]): void;
  /** A session passed its hello: send it the current membership and routes. */
  onAttach(session: NodeSession): void;
}

/**
 * Runs the Session stream protocol:
 *
 *   node                          coordinator
 *    |-- hello{nodeId,sessionId} -->|  unknown/stale session -> FAILED_PRECONDITION
 *    |<-- membership, routes -------|
 *    |-- heartbeat / report ------->|  each renews the lease; reports feed the matrix
 *    |<-- membership / routes ------|  whenever they change
 *    |-- leave, half-close -------->|  graceful leave: node marked down at once
 *
 * A stream that breaks without a Leave leaves the node up until its lease expires.
 */
export class SessionHandler {
  readonly #opts: SessionHandlerOptions;
  readonly #sessions = new Map<string, NodeSession>();

  constructor(options: SessionHandlerOptions) {
    this.#opts = options;
  }

  get(nodeId: string): NodeSession | undefined {
    return this.#sessions.get(nodeId);
  }

  all(): NodeSession[] {
    return [...this.#sessions.values()];
  }

  /** A node registered again: its old stream (if any) is over. */
  supersede(nodeId: string): void {
    const s = this.#sessions.get(nodeId);
    if (s === undefined) return;
    this.#sessions.delete(nodeId);
    s.end(
      toGrpcStatus(
        new RelayError('ERR_COORD_SESSION_UNKNOWN', 'session superseded by a newer registration'),
      ),
    );
  }

  /** The node is down: end its stream so it re-registers. */
  endNode(nodeId: string): void {
    const s = this.#sessions.get(nodeId);
    if (s === undefined) return;
    this.#sessions.delete(nodeId);
    s.end(
      toGrpcStatus(new RelayError('ERR_COORD_SESSION_UNKNOWN', 'lease expired: register again')),
    );
  }

  /** Graceful shutdown: every stream ends with OK. */
  endAll(): void {
    for (const s of this.#sessions.values()) s.end();
    this.#sessions.clear();
  }

  detachAll(): void {
    for (const s of this.#sessions.values()) s.detach();
    this.#sessions.clear();
  }

  handle(call: SessionCall): void {
    const { clock } = this.#opts;
    let session: NodeSession | undefined;
    let done = false;
    const finish = (err?: unknown) => {
      if (done) return;
      done = true;
      clock.clearTimeout(helloTimer);
      if (session !== undefined && this.#sessions.get(session.nodeId) === session) {
        this.#sessions.delete(session.nodeId);
      }
      if (err === undefined) {
        session?.detach();
        return;
      }
      if (session !== undefined) session.end(toGrpcStatus(err));
      else call.emit('error', toGrpcStatus(err));
    };
    const helloTimer = clock.setTimeout(
      () => finish(new RelayError('ERR_COORD_BAD_REQUEST', 'no session hello in time')),
      HELLO_TIMEOUT_MS,
    );
    call.on('data', (msg: NodeMessage__Output) => {
      if (done) return;
      try {
        if (session === undefined) session = this.#attach(call, msg);
        else this.#onMessage(session, msg);
        clock.clearTimeout(helloTimer);
      } catch (err) {
        finish(err);
      }
    });
    call.on('end', () => {
      // Also seen when the client cancels: only an explicit Leave marks the node down.
      if (!done) call.end();
      finish();
    });
    call.on('error', () => finish());
    call.on('cancelled', () => finish());
    call.on('close', () => finish());
  }

  #attach(call: SessionCall, msg: NodeMessage__Output): NodeSession {
    const hello = msg.hello;
    if (msg.body !== 'hello' || hello === null || hello === undefined) {
      throw new RelayError('ERR_COORD_BAD_REQUEST', 'first session message must be a hello');
    }
    if (!this.#opts.registry.renew(hello.nodeId, hello.sessionId)) {
      throw new RelayError(
        'ERR_COORD_SESSION_UNKNOWN',
        `unknown session for node ${JSON.stringify(hello.nodeId)}: register again`,
      );
    }
    this.supersede(hello.nodeId);
    const session = new NodeSession(call, hello.nodeId, hello.sessionId, this.#opts.logger);
    this.#sessions.set(hello.nodeId, session);
    this.#opts.logger.debug({ [F.NODE_ID]: hello.nodeId }, 'session attached');
    this.#opts.onAttach(session);
    return session;
  }

  #onMessage(session: NodeSession, msg: NodeMessage__Output): void {
    if (!this.#opts.registry.renew(session.nodeId, session.sessionId)) {
      throw new RelayError('ERR_COORD_SESSION_UNKNOWN', 'session expired: register again');
    }
    if (msg.body === 'report' && msg.report) {
      this.#opts.onReport(session.nodeId, msg.report.peers, msg.report.origins);
    } else if (msg.body === 'leave') {
      // Logged by the coordinator's 'down' handler.
      this.#opts.registry.markDown(session.nodeId, session.sessionId);
    }
  }
}
