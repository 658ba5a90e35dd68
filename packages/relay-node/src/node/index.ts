export {
  gcTriggersChosen,
  HEAP_FLOOR_FLAG,
  heapFloorAdvice,
  STREAMING_GC_FLAGS,
  tuneGcForStreaming,
} from './gc-tuning.ts';
export {
  MALLOC_TRIM_THRESHOLD,
  MALLOC_TUNABLE,
  mallocTrimChosen,
  mallocTuningAdvice,
  mallocTuningEnv,
  onGlibc,
  withMallocTuning,
} from './malloc-tuning.ts';
export {
  type EntryCandidate,
  type MeasureNearestOptions,
  measureNearest,
  type NearestEntry,
} from './nearest.ts';
export {
  loadNodeConfigFile,
  type NodeSettings,
  parseHostPort,
  parseNodeConfig,
  type ResolvedNodeSettings,
  resolveNodeSettings,
} from './node-config.ts';
export { NodeMeasurements, type NodeMeasurementsOptions } from './node-measurements.ts';
export {
  DEFAULT_PEER_FORGET_MS,
  dialsPeer,
  type PeerLinkView,
  PeerManager,
  type PeerManagerOptions,
} from './peer-manager.ts';
export {
  DEFAULT_CLOSE_GRACE_MS,
  type HostPort,
  RELAYMESH_VERSION,
  RelayNode,
  type RelayNodeAddresses,
  type RelayNodeOptions,
  type RelayNodeTimers,
} from './relay-node.ts';
