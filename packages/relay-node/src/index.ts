export * from './control/index.ts';
export {
  DEFAULT_CLI,
  type DemoOptions,
  type DemoSummary,
  describePath,
  rangeSha256,
  renderSummary,
  runDemo,
  SUPERVISED_CLI,
  summaryJson,
} from './demo/demo.ts';
export { type DownloadOptions, type DownloadResult, download } from './demo/download.ts';
export { type DemoOutput, type ProgressDisplay, streamOutput } from './demo/progress.ts';
export {
  BASE_STREAM_WINDOW,
  DEFAULT_MUX_CONFIG,
  type MuxConfig,
  resolveMuxConfig,
} from './mux/config.ts';
export { createMemoryPair, type MemoryPairOptions } from './mux/memory-pair.ts';
export {
  type CloseOptions,
  Session,
  type SessionOptions,
  type SessionRole,
  type SessionState,
} from './mux/session.ts';
export { MuxStream } from './mux/stream.ts';
export {
  DEFAULT_TRANSPORT_HIGH_WATER_MARK,
  StreamTransport,
  type StreamTransportOptions,
} from './mux/stream-transport.ts';
export type { FrameTransport, FrameTransportHandlers } from './mux/transport.ts';
export { CreditBudget, processCreditBudget, type RttStats } from './mux/window.ts';
export * from './node/index.ts';
export * from './proxy/index.ts';
export * from './routing/index.ts';
export {
  closeCodeFor,
  closeReasonFor,
  errorFromClose,
  WsCloseCode,
} from './tunnel/close-codes.ts';
export { type DialTunnelOptions, TunnelDialer, type TunnelDialerOptions } from './tunnel/dialer.ts';
export {
  acceptHello,
  type DialerHelloOptions,
  type HelloIdentity,
  type HelloResult,
  offerHello,
} from './tunnel/handshake.ts';
export {
  DEFAULT_MAX_PENDING_HANDSHAKES,
  DEFAULT_TUNNEL_MAX_PAYLOAD,
  TunnelListener,
  type TunnelListenerOptions,
} from './tunnel/listener.ts';
export {
  PersistentTunnel,
  type PersistentTunnelOptions,
  type PersistentTunnelState,
  type RetryInfo,
} from './tunnel/persistent-tunnel.ts';
export { Tunnel, type TunnelOptions } from './tunnel/tunnel.ts';
export {
  DEFAULT_WS_HIGH_WATER_MARK,
  WsTransport,
  type WsTransportOptions,
} from './tunnel/ws-transport.ts';
