export { DataPlane, type DataPlaneOptions } from './data-plane.ts';
export {
  EntryConnector,
  type EntryConnectorOptions,
  type EntryFailure,
  type EntryStream,
  failureForReset,
  type OpenRequest,
} from './entry-connector.ts';
export { ExitHandler, type ExitHandlerOptions } from './exit/exit-handler.ts';
export {
  DEFAULT_HEALTH_CHECK,
  HealthChecker,
  type HealthCheckerOptions,
} from './exit/health-checker.ts';
export {
  type BalanceMode,
  Upstream,
  UpstreamPool,
  type UpstreamPoolOptions,
} from './exit/upstream-pool.ts';
export { MAX_RESUMES, type ResumePlan, resumePlanFor } from './http/body-relay.ts';
export { connectAllowed, EntryServer, type EntryServerOptions } from './http/entry-server.ts';
export { ERROR_HEADER, PATH_HEADER } from './http/responses.ts';
export { isIdempotent, isRefusal, RETRY_BODY_LIMIT } from './http/retry.ts';
export {
  DATA_PLANE_VERSION,
  decodeOpenHeader,
  decodeResponseHead,
  encodeOpenHeader,
  encodePrefixed,
  encodeResponseHead,
  type HeaderPairs,
  MAX_HOPS,
  MAX_OPEN_HEADER_BYTES,
  MAX_RESPONSE_HEAD_BYTES,
  type OpenHeader,
  type RequestHead,
  type ResponseHead,
  readPrefixed,
  StreamKind,
} from './open-header.ts';
export { StreamServer, type StreamServerOptions } from './relay/stream-server.ts';
export { duplexPair, resetStream, type SpliceResult, splice } from './splice.ts';
export {
  type ForwardRule,
  ForwardServer,
  type ForwardServerOptions,
  parseForwardRule,
} from './tcp/forward-server.ts';
export type {
  HealthCheckConfig,
  HopStream,
  Origin,
  OriginCatalog,
  RouteSource,
  StreamOpener,
  UpstreamAddress,
} from './types.ts';
