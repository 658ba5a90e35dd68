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
