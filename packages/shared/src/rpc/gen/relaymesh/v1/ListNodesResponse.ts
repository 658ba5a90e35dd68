// Original file: proto/coordinator.proto

import type { NodeInfo as _relaymesh_v1_NodeInfo, NodeInfo__Output as _relaymesh_v1_NodeInfo__Output } from '../../relaymesh/v1/NodeInfo.ts';
import type { LinkInfo as _relaymesh_v1_LinkInfo, LinkInfo__Output as _relaymesh_v1_LinkInfo__Output } from '../../relaymesh/v1/LinkInfo.ts';
import type { OriginLeg as _relaymesh_v1_OriginLeg, OriginLeg__Output as _relaymesh_v1_OriginLeg__Output } from '../../relaymesh/v1/OriginLeg.ts';

export interface ListNodesResponse {
  'nodes'?: (_relaymesh_v1_NodeInfo)[];
  'links'?: (_relaymesh_v1_LinkInfo)[];
  'origins'?: (_relaymesh_v1_OriginLeg)[];
}

export interface ListNodesResponse__Output {
  'nodes': (_relaymesh_v1_NodeInfo__Output)[];
  'links': (_relaymesh_v1_LinkInfo__Output)[];
  'origins': (_relaymesh_v1_OriginLeg__Output)[];
}
