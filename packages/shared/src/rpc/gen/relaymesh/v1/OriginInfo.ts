// Original file: proto/coordinator.proto

import type { HealthCheck as _relaymesh_v1_HealthCheck, HealthCheck__Output as _relaymesh_v1_HealthCheck__Output } from '../../relaymesh/v1/HealthCheck.ts';

export interface OriginInfo {
  'name'?: (string);
  'hosts'?: (string)[];
  'upstreams'?: (string)[];
  'healthCheck'?: (_relaymesh_v1_HealthCheck | null);
}

export interface OriginInfo__Output {
  'name': (string);
  'hosts': (string)[];
  'upstreams': (string)[];
  'healthCheck': (_relaymesh_v1_HealthCheck__Output | null);
}
