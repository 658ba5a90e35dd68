export {
  type ClusterConfig,
  loadClusterConfig,
  type OriginConfig,
  parseClusterConfig,
} from '@relaymesh/shared';
export {
  Coordinator,
  type CoordinatorOptions,
  type RouteQuery,
  splitHostPort,
} from './coordinator.ts';
export {
  DEFAULT_MATRIX_OPTIONS,
  LatencyMatrix,
  type MatrixOptions,
  type OriginSample,
  type PeerSample,
} from './matrix/latency-matrix.ts';
export {
  DEFAULT_LEASE_MS,
  type NodeAnnouncement,
  type NodeRecord,
  type NodeStatus,
  Registry,
  type RegistryOptions,
} from './membership/registry.ts';
export * from './paths/index.ts';
