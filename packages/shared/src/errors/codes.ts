/**
 * The registry of every error code relaymesh emits. Codes are stable API: they appear in
 * logs, in RST/GO_AWAY frames (as numbers, see `protocol/frame.ts`), in gRPC metadata and
 * in HTTP error bodies. `docs/errors.md` lists the same codes; a test keeps both in sync.
 *
 * `retryable` says whether trying the same operation again (later, or on another path)
 * can succeed. Add a code here, then a row in docs/errors.md.
 */
export const ERROR_CODES = {
  // ---- protocol: the peer broke the wire contract (tunnel is closed) ----
  ERR_PROTOCOL_BAD_VERSION: {
    retryable: false,
    doc: 'frame or hello carries a protocol version we do not speak',
  },
  ERR_PROTOCOL_BAD_TYPE: {
    retryable: false,
    doc: 'frame type is not DATA, WINDOW_UPDATE, PING or GO_AWAY',
  },
  ERR_PROTOCOL_BAD_FLAGS: {
    retryable: false,
    doc: 'flag combination not allowed for this frame type',
  },
  ERR_PROTOCOL_FRAME_TOO_LARGE: {
    retryable: false,
    doc: 'frame payload exceeds the negotiated maximum',
  },
  ERR_PROTOCOL_TRUNCATED: {
    retryable: false,
    doc: 'message ends inside a frame header or payload',
  },
  ERR_PROTOCOL_BAD_STREAM_ID: {
    retryable: false,
    doc: 'stream id has the wrong parity, is zero where a stream is required, or was reused',
  },
  ERR_PROTOCOL_DUPLICATE_STREAM: {
    retryable: false,
    doc: 'SYN for a stream id that is already open',
  },
  ERR_PROTOCOL_WINDOW_EXCEEDED: {
    retryable: false,
    doc: 'peer sent more DATA than the window it was granted',
  },
  ERR_PROTOCOL_WINDOW_OVERFLOW: {
    retryable: false,
    doc: 'WINDOW_UPDATE would grow a send window past 2^31-1',
  },
  ERR_PROTOCOL_BAD_INITIAL_WINDOW: {
    retryable: false,
    doc: 'SYN or ACK advertises an initial window below the 256 KiB protocol base',
  },
  ERR_PROTOCOL_UNEXPECTED_FRAME: {
    retryable: false,
    doc: 'frame not valid in the current stream or tunnel state',
  },
  ERR_PROTOCOL_BAD_HELLO: {
    retryable: false,
    doc: 'first message on a tunnel is not a well-formed hello',
  },

  // ---- auth ----
  ERR_AUTH_FAILED: { retryable: false, doc: 'cluster token proof did not verify (wrong token)' },
  ERR_AUTH_TIMEOUT: { retryable: true, doc: 'hello handshake did not complete in time' },

  // ---- mux: stream and session level ----
  ERR_MUX_STREAM_RESET: { retryable: true, doc: 'the peer reset the stream' },
  ERR_MUX_BACKLOG_FULL: {
    retryable: true,
    doc: 'accept backlog full: the new stream was refused with RST',
  },
  ERR_MUX_TOO_MANY_STREAMS: {
    retryable: true,
    doc: 'max concurrent streams reached: the new stream was refused with RST',
  },
  ERR_MUX_GOING_AWAY: {
    retryable: true,
    doc: 'session is draining (GO_AWAY sent or received): no new streams',
  },
  ERR_MUX_SESSION_CLOSED: { retryable: true, doc: 'the session closed under the stream' },
  ERR_MUX_KEEPALIVE_TIMEOUT: {
    retryable: true,
    doc: 'no bytes from the peer within the dead-peer timeout',
  },
  ERR_MUX_OPEN_TIMEOUT: { retryable: true, doc: 'the peer did not ACK a stream open in time' },
  ERR_MUX_MEMORY_LIMIT: {
    retryable: true,
    doc: 'process-wide receive budget exhausted: stream refused or reset',
  },

  // ---- tunnel ----
  ERR_TUNNEL_CONNECT: { retryable: true, doc: 'could not open the tunnel connection to the peer' },
  ERR_TUNNEL_CLOSED: { retryable: true, doc: 'the tunnel connection closed' },
  ERR_TUNNEL_TEXT_MESSAGE: {
    retryable: false,
    doc: 'a text WebSocket message on a tunnel (only binary messages are allowed)',
  },
  ERR_TUNNEL_MESSAGE_TOO_LARGE: {
    retryable: false,
    doc: 'a WebSocket message larger than the tunnel maxPayload',
  },
  ERR_TUNNEL_WS_PROTOCOL: {
    retryable: false,
    doc: 'the peer broke the WebSocket protocol itself (bad opcode, masking, close frame)',
  },
  ERR_TUNNEL_UPGRADE_REJECTED: {
    retryable: false,
    doc: 'the listener answered the WebSocket upgrade with an HTTP error status',
  },
  ERR_TUNNEL_HANDSHAKE_LIMIT: {
    retryable: true,
    doc: 'too many hello handshakes pending at the listener: connection refused',
  },
  ERR_TUNNEL_REPLACED: {
    retryable: true,
    doc: 'tunnel closed because the same peer established a newer one',
  },
  ERR_TUNNEL_SELF: { retryable: false, doc: 'the peer has our own node id (a node dialed itself)' },
  ERR_TUNNEL_PEER_MISMATCH: {
    retryable: false,
    doc: 'the listener answered with a node id other than the one the dialer expected',
  },
  ERR_TUNNEL_DOWN: {
    retryable: true,
    doc: 'no tunnel to that peer is up right now (the entry tries the next path)',
  },

  // ---- dialer ----
  ERR_DIAL_TIMEOUT: {
    retryable: true,
    doc: 'outbound connection (direct or via egress proxy) timed out',
  },
  ERR_DIAL_REFUSED: { retryable: true, doc: 'outbound connection refused or reset' },
  ERR_DIAL_PROXY_REJECTED: {
    retryable: false,
    doc: 'egress proxy answered CONNECT with a non-2xx status (e.g. 407, 502)',
  },
  ERR_DIAL_PROXY_PROTOCOL: {
    retryable: true,
    doc: 'egress proxy sent something that is not an HTTP CONNECT response',
  },

  // ---- world: the simulated world used by tests, benchmarks and the demo ----
  ERR_WORLD_CONFIG: {
    retryable: false,
    doc: 'world file or link table is invalid (the message names the region, link or field)',
  },
  ERR_WORLD_PROCESS: {
    retryable: true,
    doc: 'a world process did not print its ready line in time, or exited while starting',
  },
  ERR_DEMO_FAILED: {
    retryable: true,
    doc: 'relaymesh demo: no route in time, a download failed, or a file arrived corrupted',
  },

  // ---- proxy: the data plane (entry, relay, exit) ----
  ERR_PROXY_BAD_OPEN_HEADER: {
    retryable: false,
    doc: 'stream open header or response head is malformed, too large or truncated',
  },
  ERR_PROXY_HEAD_TIMEOUT: {
    retryable: true,
    doc: 'open header or response head did not arrive on the stream in time',
  },
  ERR_PROXY_HOP_LIMIT: {
    retryable: false,
    doc: 'stream path is longer than 4 hops or visits a node twice (loop)',
  },
  ERR_PROXY_UNKNOWN_HOST: {
    retryable: false,
    doc: 'request names a host that no declared origin serves (entry answers 421)',
  },
  ERR_PROXY_NOT_DECLARED: {
    retryable: false,
    doc: 'CONNECT port or origin name not declared: refused (no open proxy)',
  },
  ERR_PROXY_BAD_REQUEST: {
    retryable: false,
    doc: 'client request the entry will not forward (bad target, https in absolute form)',
  },
  ERR_PROXY_UPSTREAM_CONNECT: {
    retryable: true,
    doc: 'exit could not connect to any upstream of the origin: refused, unreachable, or the connect timed out (entry answers 502; 504 when the last connect timed out; it first tries another exit once)',
  },
  ERR_PROXY_UPSTREAM_TIMEOUT: {
    retryable: true,
    doc: 'origin did not send its response headers in time (entry answers 504)',
  },
  ERR_PROXY_UPSTREAM_RESET: {
    retryable: true,
    doc: 'origin connection failed after the request was sent (entry answers 502)',
  },
  ERR_PROXY_STREAM_RESET: {
    retryable: true,
    doc: 'a hop reset the stream before the response head arrived (entry answers 502)',
  },

  // ---- routing ----
  ERR_ROUTE_NONE: {
    retryable: true,
    doc: 'no route to the origin yet, or every path failed to open (entry answers 502)',
  },

  // ---- config ----
  ERR_CONFIG_INVALID: {
    retryable: false,
    doc: 'configuration failed validation; the message names the field',
  },

  // ---- coordinator (control plane) ----
  ERR_COORD_UNAUTHENTICATED: {
    retryable: false,
    doc: 'the coordinator rejected the cluster token (gRPC UNAUTHENTICATED)',
  },
  ERR_COORD_UNAVAILABLE: {
    retryable: true,
    doc: 'the coordinator could not be reached or the call timed out',
  },
  ERR_COORD_UNKNOWN_NODE: { retryable: false, doc: 'no node with that id is registered' },
  ERR_COORD_UNKNOWN_ORIGIN: { retryable: false, doc: 'no origin with that name is declared' },
  ERR_COORD_SESSION_UNKNOWN: {
    retryable: true,
    doc: 'session stream names a registration the coordinator does not know: register again',
  },
  ERR_COORD_TOO_MANY_NODES: {
    retryable: true,
    doc: 'the coordinator already tracks its maximum number of nodes',
  },
  ERR_COORD_BAD_REQUEST: {
    retryable: false,
    doc: 'a control-plane message is malformed (missing id, bad URL, wrong first message)',
  },
  ERR_COORD_RPC: { retryable: true, doc: 'a coordinator call failed with another gRPC status' },

  // ---- lifecycle ----
  ERR_CLOSED: { retryable: false, doc: 'operation on an object that is closing or closed' },
  ERR_DESTROYED: { retryable: false, doc: 'operation on an object that was destroyed' },
  ERR_INTERNAL: { retryable: false, doc: 'a bug: an invariant did not hold' },
} as const satisfies Record<string, { retryable: boolean; doc: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;
