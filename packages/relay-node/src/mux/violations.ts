import { type Frame, RelayError, WireCode } from '@relaymesh/shared';
import { BASE_STREAM_WINDOW } from './config.ts';

/**
 * The errors a session raises when its peer breaks relaymux (docs/protocol.md §8), and the
 * GO_AWAY code each one is answered with.
 */

const FLOW_CONTROL_CODES: ReadonlySet<string> = new Set([
  'ERR_PROTOCOL_WINDOW_EXCEEDED',
  'ERR_PROTOCOL_WINDOW_OVERFLOW',
  'ERR_PROTOCOL_BAD_INITIAL_WINDOW',
]);

/** FLOW_CONTROL_ERROR for window violations, PROTOCOL_ERROR for everything else. */
export function goAwayCodeFor(err: RelayError): WireCode {
  return FLOW_CONTROL_CODES.has(err.code) ? WireCode.FLOW_CONTROL_ERROR : WireCode.PROTOCOL_ERROR;
}

export function rstOnData(f: Frame): RelayError {
  return new RelayError('ERR_PROTOCOL_BAD_FLAGS', `RST on a DATA frame (stream ${f.streamId})`, {
    details: { streamId: f.streamId, flags: f.flags },
  });
}

export function duplicateStream(id: number): RelayError {
  return new RelayError('ERR_PROTOCOL_DUPLICATE_STREAM', `SYN for open stream ${id}`, {
    details: { streamId: id },
  });
}

export function badStreamId(id: number, lastPeerId: number): RelayError {
  return new RelayError(
    'ERR_PROTOCOL_BAD_STREAM_ID',
    `SYN for stream ${id}: wrong parity or not above ${lastPeerId}`,
    { details: { streamId: id, lastPeerId } },
  );
}

export function neverOpened(f: Frame): RelayError {
  return new RelayError(
    'ERR_PROTOCOL_UNEXPECTED_FRAME',
    `frame for stream ${f.streamId}, never opened`,
    { details: { streamId: f.streamId, type: f.type, flags: f.flags } },
  );
}

export function badInitialWindow(f: Frame): RelayError {
  return new RelayError(
    'ERR_PROTOCOL_BAD_INITIAL_WINDOW',
    `initial window ${f.length} on stream ${f.streamId} is below ${BASE_STREAM_WINDOW}`,
    { details: { streamId: f.streamId, window: f.length } },
  );
}
