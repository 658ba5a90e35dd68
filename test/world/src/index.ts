// @relaymesh/world: the simulated world (docs/world.md).
export {
  type ControlServer,
  type ControlTarget,
  startControlServer,
} from './control-api.ts';
export {
  EgressProxy,
  type EgressProxyOptions,
  type Endpoint,
  type FaultResult,
  type LinkFault,
  type LinkSpec,
  startEgressProxy,
} from './egress-proxy.ts';
export type { LinkDirectionStats } from './link/link-direction.ts';
export {
  type JitterModel,
  jitterPreset,
  type LinkProfile,
  mathisBandwidthBps,
  NO_JITTER,
} from './link/profile.ts';
export { startHttpEchoServer, startTcpEchoServer } from './origins/echo-servers.ts';
export { generatedBytes, generatedRange, generatedSha256 } from './origins/file-content.ts';
export {
  type FileServerOptions,
  type OriginServer,
  startFileServer,
} from './origins/file-server.ts';
export { type OriginConfig, startOrigin } from './origins/start-origin.ts';
export { type Mesh, type MeshNode, type StartMeshOptions, startMesh } from './runner/mesh.ts';
export {
  logLineReady,
  type ProcessSpec,
  parseJsonReadyLine,
  type ReadyInfo,
  STOP_GRACE_MS,
  WorldProcess,
} from './runner/world-process.ts';
export {
  type ClusterOrigin,
  type OriginAddress,
  type StartWorldOptions,
  startWorld,
  WorldHandle,
} from './runner/world-runner.ts';
export {
  type LoadWorldOptions,
  linkBetween,
  loadWorld,
  resolveWorld,
  WORLD_DEFAULTS,
  WORLDS_DIR,
} from './world/loader.ts';
export { DATA_DIR, type LatencyMatrix, loadLatencyMatrix } from './world/matrix.ts';
export { type RelayWin, relayWins } from './world/relay-wins.ts';
export type {
  LinkSource,
  OriginKind,
  ResolvedLink,
  World,
  WorldClient,
  WorldNode,
  WorldOrigin,
  WorldRegion,
} from './world/types.ts';
