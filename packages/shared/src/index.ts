// YAML for config files in packages that do not depend on `yaml` themselves (node.yaml).
export { parse as parseYaml } from 'yaml';
export {
  type ClusterConfig,
  type HealthCheckConfig,
  loadClusterConfig,
  MIN_TOKEN_LENGTH,
  type OriginConfig,
  type ParseClusterConfigOptions,
  parseClusterConfig,
  parseUpstream,
  type UpstreamTarget,
  validateClusterConfig,
} from './config/cluster.ts';
export { type CreateDialerOptions, createDialer } from './dial/create-dialer.ts';
export {
  connectTcp,
  DEFAULT_DIAL_TIMEOUT_MS,
  type Dialer,
  type DialOptions,
  type DialTarget,
  DirectDialer,
} from './dial/dialer.ts';
export {
  HttpConnectDialer,
  type HttpConnectDialerOptions,
  MAX_CONNECT_RESPONSE_HEAD_BYTES,
} from './dial/http-connect.ts';
export { isRelayError, RelayError, type RelayErrorOptions } from './errors/base.ts';
export { ERROR_CODES, type ErrorCode } from './errors/codes.ts';
export { F } from './log/fields.ts';
export {
  createRootLogger,
  type Logger,
  REDACT_PATHS,
  type RootLoggerOptions,
  silentLogger,
} from './log/logger.ts';
export { decodeFrame, encodeFrame, FrameDecoder, writeHeader } from './protocol/codec.ts';
export * from './protocol/frame.ts';
export * from './protocol/hello.ts';
export * from './rpc/index.ts';
export { Backoff, type BackoffOptions } from './time/backoff.ts';
export { type Clock, systemClock, type TimerHandle } from './time/clock.ts';
