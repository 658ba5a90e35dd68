// Original file: proto/coordinator.proto

import type { Membership as _relaymesh_v1_Membership, Membership__Output as _relaymesh_v1_Membership__Output } from '../../relaymesh/v1/Membership.ts';
import type { RouteTable as _relaymesh_v1_RouteTable, RouteTable__Output as _relaymesh_v1_RouteTable__Output } from '../../relaymesh/v1/RouteTable.ts';

export interface CoordinatorMessage {
  'membership'?: (_relaymesh_v1_Membership | null);
  'routes'?: (_relaymesh_v1_RouteTable | null);
  'body'?: "membership"|"routes";
}

export interface CoordinatorMessage__Output {
  'membership'?: (_relaymesh_v1_Membership__Output | null);
  'routes'?: (_relaymesh_v1_RouteTable__Output | null);
  'body'?: "membership"|"routes";
}
