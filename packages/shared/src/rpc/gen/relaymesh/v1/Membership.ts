// Original file: proto/coordinator.proto

import type { NodeInfo as _relaymesh_v1_NodeInfo, NodeInfo__Output as _relaymesh_v1_NodeInfo__Output } from '../../relaymesh/v1/NodeInfo.ts';
import type { OriginInfo as _relaymesh_v1_OriginInfo, OriginInfo__Output as _relaymesh_v1_OriginInfo__Output } from '../../relaymesh/v1/OriginInfo.ts';
import type { Long } from '@grpc/proto-loader';

export interface Membership {
  'version'?: (number | string | Long);
  'peers'?: (_relaymesh_v1_NodeInfo)[];
  'origins'?: (_relaymesh_v1_OriginInfo)[];
}

export interface Membership__Output {
  'version': (number);
  'peers': (_relaymesh_v1_NodeInfo__Output)[];
  'origins': (_relaymesh_v1_OriginInfo__Output)[];
}
