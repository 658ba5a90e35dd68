export {
  bearerValue,
  TOKEN_METADATA_KEY,
  tokenFromMetadata,
  tokenInterceptor,
  tokensEqual,
} from './auth.ts';
export { type CoordinatorStubOptions, createCoordinatorStub, deadlineIn } from './client.ts';
export type {
  CoordinatorClient,
  CoordinatorHandlers,
} from './gen/relaymesh/v1/Coordinator.ts';
export type {
  CoordinatorMessage,
  CoordinatorMessage__Output,
} from './gen/relaymesh/v1/CoordinatorMessage.ts';
export type {
  GetRoutesRequest,
  GetRoutesRequest__Output,
} from './gen/relaymesh/v1/GetRoutesRequest.ts';
export type {
  GetRoutesResponse,
  GetRoutesResponse__Output,
} from './gen/relaymesh/v1/GetRoutesResponse.ts';
export type { HealthCheck, HealthCheck__Output } from './gen/relaymesh/v1/HealthCheck.ts';
export type { LinkInfo, LinkInfo__Output } from './gen/relaymesh/v1/LinkInfo.ts';
export type {
  ListNodesResponse,
  ListNodesResponse__Output,
} from './gen/relaymesh/v1/ListNodesResponse.ts';
export type {
  MeasurementReport,
  MeasurementReport__Output,
} from './gen/relaymesh/v1/MeasurementReport.ts';
export type { Membership, Membership__Output } from './gen/relaymesh/v1/Membership.ts';
export type { NodeInfo, NodeInfo__Output } from './gen/relaymesh/v1/NodeInfo.ts';
export type { NodeMessage, NodeMessage__Output } from './gen/relaymesh/v1/NodeMessage.ts';
export type { OriginInfo, OriginInfo__Output } from './gen/relaymesh/v1/OriginInfo.ts';
export type { OriginLeg, OriginLeg__Output } from './gen/relaymesh/v1/OriginLeg.ts';
export type {
  OriginMeasurement,
  OriginMeasurement__Output,
} from './gen/relaymesh/v1/OriginMeasurement.ts';
export type { PathInfo, PathInfo__Output } from './gen/relaymesh/v1/PathInfo.ts';
export type {
  PeerMeasurement,
  PeerMeasurement__Output,
} from './gen/relaymesh/v1/PeerMeasurement.ts';
export type {
  RegisterRequest,
  RegisterRequest__Output,
} from './gen/relaymesh/v1/RegisterRequest.ts';
export type {
  RegisterResponse,
  RegisterResponse__Output,
} from './gen/relaymesh/v1/RegisterResponse.ts';
export type { Route, Route__Output } from './gen/relaymesh/v1/Route.ts';
export type { RouteTable, RouteTable__Output } from './gen/relaymesh/v1/RouteTable.ts';
export type { SessionHello, SessionHello__Output } from './gen/relaymesh/v1/SessionHello.ts';
export {
  COORDINATOR_PROTO_PATH,
  type CoordinatorProto,
  loadCoordinatorProto,
  PROTO_LOADER_OPTIONS,
} from './proto.ts';
export { ERROR_CODE_METADATA_KEY, fromGrpcError, toGrpcStatus } from './status.ts';
