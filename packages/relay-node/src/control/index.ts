export {
  CoordinatorClient,
  type CoordinatorClientOptions,
  type NodeIdentity,
} from './coordinator-client.ts';
export type { MeasurementSource, OriginMeasurement, PeerMeasurement } from './measurements.ts';
export { OriginProber, type OriginProberOptions, type ProbeOrigin } from './origin-prober.ts';
export {
  type NodesReport,
  type QueryOptions,
  queryNodes,
  queryRoutes,
  type RoutesReport,
} from './queries.ts';
export type { MembershipSnapshot, PeerInfo, RouteTableSnapshot } from './snapshots.ts';
