import {
  type Challenge,
  type Clock,
  clientProof,
  DEFAULT_HELLO_TIMEOUT_MS,
  decodeHelloMessage,
  encodeChallenge,
  encodeHello,
  encodeWelcome,
  HELLO_MAX_ID_LENGTH,
  type Hello,
  HelloKind,
  type HelloMessage,
  type HelloTranscript,
  isValidHelloId,
  negotiateVersion,
  newHelloNonce,
  proofMatches,
  RelayError,
  SUPPORTED_VERSIONS,
  serverProof,
  systemClock,
  type TimerHandle,
  type VersionRange,
  type Welcome,
} from '@relaymesh/shared';
import WebSocket from 'ws';
import { closeCodeFor, closeReasonFor, errorFromClose, errorFromWs } from './close-codes.ts';
import { WsTransport, type WsTransportOptions } from './ws-transport.ts';

/**
 * Both halves of the hello (packages/shared/src/protocol/hello.ts has the diagram) over an
 * open WebSocket. On success the WsTransport is attached in the same tick as the last
 * hello message, so frames that follow it in the same socket read are kept. On failure
 * the WebSocket is closed with the mapped close code and the RelayError code as reason.
 */

export interface HelloIdentity {
  /** Our node id (printable ascii, 1-128 bytes). */
  nodeId: string;
  /** Our region, sent by the dialer for the listener's logs and routing. */
  region?: string;
  /** The cluster token. Never sent, never logged. */
  token: string | Buffer;
  /** @default SUPPORTED_VERSIONS ({min: 1, max: 1}) */
  versions?: VersionRange;
  /** Deadline for the whole exchange: ERR_AUTH_TIMEOUT. @default 10000 */
  timeoutMs?: number;
  clock?: Clock;
  /** Passed to the WsTransport created on success. */
  transport?: WsTransportOptions;
}

export interface DialerHelloOptions extends HelloIdentity {
  /** Fail with ERR_TUNNEL_PEER_MISMATCH (before proving anything) if the listener is someone else. */
  expectedPeerNodeId?: string;
}

export interface HelloResult {
  peerNodeId: string;
  /** Undefined when the dialer did not send one (and always on the dialer side). */
  peerRegion: string | undefined;
  version: number;
  transport: WsTransport;
}

/** Throws ERR_CONFIG_INVALID unless the id and region can travel in a hello. */
export function checkIdentity(nodeId: string, region: string | undefined): void {
  if (!isValidHelloId(nodeId)) {
    throw new RelayError(
      'ERR_CONFIG_INVALID',
      `node id ${JSON.stringify(nodeId.slice(0, 40))}: 1-${HELLO_MAX_ID_LENGTH} printable ascii characters, no space`,
    );
  }
  if (region !== undefined && !isValidHelloId(region, true)) {
    throw new RelayError(
      'ERR_CONFIG_INVALID',
      `region ${JSON.stringify(region.slice(0, 40))}: up to ${HELLO_MAX_ID_LENGTH} printable ascii characters, no space`,
    );
  }
}

/** Grace for the close frame after a failed hello before the socket is cut. */
const HELLO_CLOSE_GRACE_MS = 1000;

/**
 * One hello exchange: owns the WebSocket listeners and the deadline until it settles.
 * `step` sees each message and returns true when the hello is complete.
 */
class Exchange {
  readonly #ws: WebSocket;
  readonly #clock: Clock;
  readonly #timer: TimerHandle;
  readonly #resolve: (r: HelloResult) => void;
  readonly #reject: (e: RelayError) => void;
  #done = false;
  readonly #onMessage: (data: WebSocket.RawData, isBinary: boolean) => void;
  readonly #onClose: (code: number, reason: Buffer) => void;
  readonly #onError: (err: Error) => void;

  constructor(
    ws: WebSocket,
    opts: HelloIdentity,
    step: (m: HelloMessage) => HelloResult | RelayError | undefined,
    resolve: (r: HelloResult) => void,
    reject: (e: RelayError) => void,
  ) {
    this.#ws = ws;
    this.#clock = opts.clock ?? systemClock;
    this.#resolve = resolve;
    this.#reject = reject;
    const timeoutMs = opts.timeoutMs ?? DEFAULT_HELLO_TIMEOUT_MS;
    this.#timer = this.#clock.setTimeout(
      () =>
        this.fail(
          new RelayError('ERR_AUTH_TIMEOUT', `hello not completed within ${timeoutMs} ms`, {
            details: { timeoutMs },
          }),
        ),
      timeoutMs,
    );
    this.#onMessage = (data, isBinary) => {
      if (this.#done) return;
      if (!isBinary) {
        this.fail(new RelayError('ERR_TUNNEL_TEXT_MESSAGE', 'text message during the hello'));
        return;
      }
      const m = decodeHelloMessage(Buffer.isBuffer(data) ? data : Buffer.from(data as ArrayBuffer));
      let out: HelloResult | RelayError | undefined;
      try {
        out = m instanceof RelayError ? m : step(m);
      } catch (err) {
        // Bad local identity (encode checks): our fault, but still only this tunnel's.
        out =
          err instanceof RelayError
            ? err
            : new RelayError('ERR_INTERNAL', 'hello step failed', { cause: err });
      }
      if (out instanceof RelayError) this.fail(out);
      else if (out !== undefined) this.#succeed(out);
    };
    this.#onClose = (code, reason) =>
      this.fail(
        errorFromClose(code, reason) ??
          new RelayError('ERR_TUNNEL_CLOSED', `peer closed the tunnel during the hello (${code})`),
        false,
      );
    this.#onError = (err) => this.fail(errorFromWs(err));
    ws.on('message', this.#onMessage);
    ws.on('close', this.#onClose);
    ws.on('error', this.#onError);
  }

  send(message: Buffer): void {
    this.#ws.send(message, { binary: true });
  }

  fail(err: RelayError, closeWs = true): void {
    if (this.#done) return;
    this.#finish();
    const ws = this.#ws;
    // Keep an error listener: ws emits 'error' for socket failures until it is closed.
    ws.on('error', () => {});
    if (closeWs && ws.readyState === WebSocket.OPEN) {
      ws.close(closeCodeFor(err), closeReasonFor(err));
      const t = this.#clock.setTimeout(() => ws.terminate(), HELLO_CLOSE_GRACE_MS);
      ws.once('close', () => this.#clock.clearTimeout(t));
    } else if (closeWs) {
      ws.terminate();
    }
    this.#reject(err);
  }

  #succeed(r: HelloResult): void {
    this.#finish();
    this.#resolve(r);
  }

  #finish(): void {
    this.#done = true;
    this.#clock.clearTimeout(this.#timer);
    this.#ws.off('message', this.#onMessage);
    this.#ws.off('close', this.#onClose);
    this.#ws.off('error', this.#onError);
  }
}

function unexpected(expected: string, m: HelloMessage): RelayError {
  return new RelayError(
    'ERR_PROTOCOL_BAD_HELLO',
    `expected ${expected}, got hello kind 0x${m.kind.toString(16)}`,
    { details: { kind: m.kind } },
  );
}

function selfError(nodeId: string): RelayError {
  return new RelayError('ERR_TUNNEL_SELF', `peer has our own node id ${nodeId}`, {
    details: { nodeId },
  });
}

/**
 * Listener side: sends CHALLENGE, verifies HELLO, answers WELCOME. Rejects with
 * ERR_PROTOCOL_BAD_HELLO, ERR_PROTOCOL_BAD_VERSION, ERR_AUTH_FAILED, ERR_AUTH_TIMEOUT,
 * ERR_TUNNEL_SELF, ERR_TUNNEL_TEXT_MESSAGE or ERR_TUNNEL_CLOSED.
 */
export function acceptHello(ws: WebSocket, opts: HelloIdentity): Promise<HelloResult> {
  const versions = opts.versions ?? SUPPORTED_VERSIONS;
  const serverNonce = newHelloNonce();
  return new Promise((resolve, reject) => {
    const step = (m: HelloMessage): HelloResult | RelayError => {
      if (m.kind !== HelloKind.HELLO) return unexpected('HELLO', m);
      const hello = m as Hello;
      if (hello.version < versions.min || hello.version > versions.max) {
        return new RelayError(
          'ERR_PROTOCOL_BAD_VERSION',
          `peer chose protocol version ${hello.version}, we speak ${versions.min}-${versions.max}`,
          { details: { local: versions, remote: hello.version } },
        );
      }
      const t: HelloTranscript = {
        versions,
        version: hello.version,
        serverNonce,
        clientNonce: hello.nonce,
        serverNodeId: opts.nodeId,
        clientNodeId: hello.nodeId,
        region: hello.region,
      };
      if (!proofMatches(clientProof(opts.token, t), hello.mac)) {
        return new RelayError(
          'ERR_AUTH_FAILED',
          `hello proof from ${hello.nodeId} did not verify`,
          {
            details: { peerNodeId: hello.nodeId },
          },
        );
      }
      if (hello.nodeId === opts.nodeId) return selfError(hello.nodeId);
      ex.send(encodeWelcome({ version: hello.version, mac: serverProof(opts.token, t) }));
      return {
        peerNodeId: hello.nodeId,
        peerRegion: hello.region === '' ? undefined : hello.region,
        version: hello.version,
        transport: new WsTransport(ws, opts.transport),
      };
    };
    const ex = new Exchange(ws, opts, step, resolve, reject);
    try {
      ex.send(encodeChallenge({ versions, nonce: serverNonce, nodeId: opts.nodeId }));
    } catch (err) {
      ex.fail(
        err instanceof RelayError
          ? err
          : new RelayError('ERR_INTERNAL', 'challenge', { cause: err }),
      );
    }
  });
}

/**
 * Dialer side: waits for CHALLENGE, sends HELLO, verifies WELCOME. Rejects with
 * ERR_PROTOCOL_BAD_HELLO, ERR_PROTOCOL_BAD_VERSION, ERR_AUTH_FAILED, ERR_AUTH_TIMEOUT,
 * ERR_TUNNEL_SELF, ERR_TUNNEL_PEER_MISMATCH, ERR_TUNNEL_TEXT_MESSAGE, ERR_TUNNEL_CLOSED,
 * or whatever code the listener put in its close reason.
 */
export function offerHello(ws: WebSocket, opts: DialerHelloOptions): Promise<HelloResult> {
  const versions = opts.versions ?? SUPPORTED_VERSIONS;
  const clientNonce = newHelloNonce();
  let sent: { t: HelloTranscript; challenge: Challenge } | undefined;
  return new Promise((resolve, reject) => {
    const onChallenge = (c: Challenge): RelayError | undefined => {
      const version = negotiateVersion(versions, c.versions);
      if (version instanceof RelayError) return version;
      if (c.nodeId === opts.nodeId) return selfError(c.nodeId);
      if (opts.expectedPeerNodeId !== undefined && c.nodeId !== opts.expectedPeerNodeId) {
        return new RelayError(
          'ERR_TUNNEL_PEER_MISMATCH',
          `listener is ${c.nodeId}, expected ${opts.expectedPeerNodeId}`,
          { details: { peerNodeId: c.nodeId, expected: opts.expectedPeerNodeId } },
        );
      }
      const t: HelloTranscript = {
        versions: c.versions,
        version,
        serverNonce: c.nonce,
        clientNonce,
        serverNodeId: c.nodeId,
        clientNodeId: opts.nodeId,
        region: opts.region ?? '',
      };
      const mac = clientProof(opts.token, t);
      ex.send(
        encodeHello({ version, nonce: clientNonce, mac, nodeId: opts.nodeId, region: t.region }),
      );
      sent = { t, challenge: c };
      return undefined;
    };
    const onWelcome = (w: Welcome): HelloResult | RelayError => {
      const { t, challenge } = sent!;
      if (w.version !== t.version) {
        return new RelayError(
          'ERR_PROTOCOL_BAD_VERSION',
          `welcome says version ${w.version}, we chose ${t.version}`,
        );
      }
      if (!proofMatches(serverProof(opts.token, t), w.mac)) {
        return new RelayError(
          'ERR_AUTH_FAILED',
          `welcome proof from ${challenge.nodeId} did not verify`,
          { details: { peerNodeId: challenge.nodeId } },
        );
      }
      return {
        peerNodeId: challenge.nodeId,
        peerRegion: undefined,
        version: t.version,
        transport: new WsTransport(ws, opts.transport),
      };
    };
    const step = (m: HelloMessage): HelloResult | RelayError | undefined => {
      if (sent === undefined) {
        return m.kind === HelloKind.CHALLENGE
          ? onChallenge(m as Challenge)
          : unexpected('CHALLENGE', m);
      }
      return m.kind === HelloKind.WELCOME ? onWelcome(m as Welcome) : unexpected('WELCOME', m);
    };
    const ex = new Exchange(ws, opts, step, resolve, reject);
  });
}
