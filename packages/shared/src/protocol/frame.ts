/**
 * Wire constants of the relaymesh tunnel protocol (relaymux). The normative description
 * is docs/protocol.md; keep both in step.
 *
 * ```
 *  0        1        2        3        4                 8                12
 * +--------+--------+-----------------+-----------------+-----------------+
 * |version |  type  |      flags      |    stream id    |     length      |
 * +--------+--------+-----------------+-----------------+-----------------+
 *                 all integers big-endian; payload follows (DATA only)
 * ```
 */

/** Protocol version carried in every frame header and in the hello. */
export const PROTOCOL_VERSION = 1;
/** WebSocket subprotocol that names this version during the HTTP upgrade. */
export const WS_SUBPROTOCOL = 'relaymux.1';

export const FRAME_HEADER_SIZE = 12;
/** Largest DATA payload a sender produces (the scheduler's round-robin quantum). */
export const DEFAULT_DATA_FRAME_SIZE = 16 * 1024;
/** Largest DATA payload a receiver accepts; bigger frames are a protocol violation. */
export const MAX_FRAME_PAYLOAD = 64 * 1024;
/** Largest window a stream may ever reach (2^31 - 1), as in HTTP/2. */
export const MAX_WINDOW = 0x7fff_ffff;

export const FrameType = {
  DATA: 0,
  WINDOW_UPDATE: 1,
  PING: 2,
  GO_AWAY: 3,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

export const Flag = {
  NONE: 0,
  /** Opens a stream; on PING: a request. */
  SYN: 0x1,
  /** Accepts a stream; on PING: a response. */
  ACK: 0x2,
  /** Half-close: the sender will send no more DATA on this stream. */
  FIN: 0x4,
  /** Abort the stream at once; WINDOW_UPDATE+RST carries a {@link WireCode} in `length`. */
  RST: 0x8,
} as const;
export const ALL_FLAGS = 0xf;

/**
 * Numeric codes carried by RST (in the length field of a WINDOW_UPDATE+RST) and GO_AWAY.
 * 0-15 are mux-level; 16 and up are for the proxy layer (what failed beyond the stream).
 */
export const WireCode = {
  NORMAL: 0,
  PROTOCOL_ERROR: 1,
  INTERNAL_ERROR: 2,
  REFUSED_STREAM: 3,
  CANCEL: 4,
  GOING_AWAY: 5,
  FLOW_CONTROL_ERROR: 6,
  MEMORY_LIMIT: 7,
  KEEPALIVE_TIMEOUT: 8,
  // proxy layer
  NO_ROUTE: 16,
  UPSTREAM_CONNECT_FAILED: 17,
  UPSTREAM_TIMEOUT: 18,
  UPSTREAM_RESET: 19,
  HOP_LIMIT: 20,
  BAD_OPEN_HEADER: 21,
  NOT_DECLARED: 22,
} as const;
export type WireCode = (typeof WireCode)[keyof typeof WireCode];

export interface FrameHeader {
  version: number;
  type: FrameType;
  flags: number;
  streamId: number;
  /** DATA: payload length; WINDOW_UPDATE: delta (or RST code); PING: opaque; GO_AWAY: code. */
  length: number;
}

export interface Frame extends FrameHeader {
  /** DATA payload (a view, not a copy); empty for other types. */
  payload: Buffer;
}
