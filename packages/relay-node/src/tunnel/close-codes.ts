import { ERROR_CODES, type ErrorCode, isRelayError, RelayError } from '@relaymesh/shared';

/**
 * The one place where tunnel errors meet WebSocket close codes (RFC 6455 section 7.4),
 * in both directions. The RelayError code travels in the close reason, so the peer
 * learns exactly why ("ERR_AUTH_FAILED hello proof did not verify").
 */
export const WsCloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  UNSUPPORTED_DATA: 1003,
  /** Never sent: what ws reports when the connection dropped without a close frame. */
  ABNORMAL: 1006,
  POLICY_VIOLATION: 1008,
  MESSAGE_TOO_BIG: 1009,
  INTERNAL_ERROR: 1011,
  TRY_AGAIN_LATER: 1013,
  /** Private range (4000-4999): the peer opened a newer tunnel that replaced this one. */
  REPLACED: 4001,
} as const;

/** The close code for an error (undefined: a normal close). */
export function closeCodeFor(err: Error | undefined): number {
  if (err === undefined) return WsCloseCode.NORMAL;
  if (!isRelayError(err)) return WsCloseCode.INTERNAL_ERROR;
  const code: ErrorCode = err.code;
  if (code.startsWith('ERR_PROTOCOL_')) return WsCloseCode.PROTOCOL_ERROR;
  switch (code) {
    case 'ERR_TUNNEL_TEXT_MESSAGE':
      return WsCloseCode.UNSUPPORTED_DATA;
    case 'ERR_AUTH_FAILED':
    case 'ERR_AUTH_TIMEOUT':
    case 'ERR_TUNNEL_SELF':
    case 'ERR_TUNNEL_PEER_MISMATCH':
      return WsCloseCode.POLICY_VIOLATION;
    case 'ERR_TUNNEL_MESSAGE_TOO_LARGE':
      return WsCloseCode.MESSAGE_TOO_BIG;
    case 'ERR_TUNNEL_HANDSHAKE_LIMIT':
      return WsCloseCode.TRY_AGAIN_LATER;
    case 'ERR_TUNNEL_REPLACED':
      return WsCloseCode.REPLACED;
    case 'ERR_MUX_GOING_AWAY':
    case 'ERR_CLOSED':
      return WsCloseCode.GOING_AWAY;
    default:
      return WsCloseCode.INTERNAL_ERROR;
  }
}

/** Close reasons are at most 123 bytes of UTF-8; we keep them ASCII so cutting is safe. */
const MAX_REASON_BYTES = 123;

/** "ERR_CODE message", ASCII, cut to fit a close frame. Never contains secrets: messages never do. */
export function closeReasonFor(err: Error | undefined): string {
  if (err === undefined) return '';
  const code = isRelayError(err) ? err.code : 'ERR_INTERNAL';
  const text = `${code} ${err.message}`.replace(/[^\x20-\x7e]/g, '?');
  return text.length <= MAX_REASON_BYTES ? text : text.slice(0, MAX_REASON_BYTES);
}

/**
 * What a close from the peer means. Undefined for a clean close (1000/1001 without an
 * error code); otherwise a RelayError: the code named in the reason when there is one.
 */
export function errorFromClose(closeCode: number, reason: Buffer | string): RelayError | undefined {
  const text = typeof reason === 'string' ? reason : reason.toString('utf8');
  const first = text.split(' ', 1)[0] ?? '';
  const details = { closeCode, reason: text };
  if (first in ERROR_CODES) {
    return new RelayError(first as ErrorCode, `peer closed the tunnel: ${text}`, { details });
  }
  switch (closeCode) {
    case WsCloseCode.NORMAL:
    case WsCloseCode.GOING_AWAY:
      return undefined;
    case WsCloseCode.MESSAGE_TOO_BIG:
      return new RelayError(
        'ERR_TUNNEL_MESSAGE_TOO_LARGE',
        'peer closed the tunnel: our message exceeded its maxPayload',
        { details },
      );
    case WsCloseCode.PROTOCOL_ERROR:
    case WsCloseCode.UNSUPPORTED_DATA:
      return new RelayError(
        'ERR_TUNNEL_WS_PROTOCOL',
        `peer closed the tunnel with ${closeCode} ${text}`.trim(),
        { details },
      );
    default:
      return new RelayError('ERR_TUNNEL_CLOSED', `tunnel closed with ${closeCode} ${text}`.trim(), {
        details,
      });
  }
}

/** Maps an 'error' event of a ws WebSocket (its WS_ERR_* codes, or a socket error). */
export function errorFromWs(err: Error): RelayError {
  if (isRelayError(err)) return err as RelayError;
  const code = (err as NodeJS.ErrnoException).code ?? '';
  if (code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') {
    return new RelayError('ERR_TUNNEL_MESSAGE_TOO_LARGE', `peer sent ${err.message}`, {
      cause: err,
    });
  }
  if (code.startsWith('WS_ERR_')) {
    return new RelayError(
      'ERR_TUNNEL_WS_PROTOCOL',
      `peer broke the websocket protocol: ${err.message}`,
      {
        cause: err,
        details: { wsCode: code },
      },
    );
  }
  return new RelayError('ERR_TUNNEL_CLOSED', `tunnel connection failed: ${code || err.message}`, {
    cause: err,
  });
}
