import type * as grpc from '@grpc/grpc-js';
import type { MessageTypeDefinition } from '@grpc/proto-loader';

import type { CoordinatorClient as _relaymesh_v1_CoordinatorClient, CoordinatorDefinition as _relaymesh_v1_CoordinatorDefinition } from './relaymesh/v1/Coordinator.ts';
import type { CoordinatorMessage as _relaymesh_v1_CoordinatorMessage, CoordinatorMessage__Output as _relaymesh_v1_CoordinatorMessage__Output } from './relaymesh/v1/CoordinatorMessage.ts';
import type { GetRoutesRequest as _relaymesh_v1_GetRoutesRequest, GetRoutesRequest__Output as _relaymesh_v1_GetRoutesRequest__Output } from './relaymesh/v1/GetRoutesRequest.ts';
import type { GetRoutesResponse as _relaymesh_v1_GetRoutesResponse, GetRoutesResponse__Output as _relaymesh_v1_GetRoutesResponse__Output } from './relaymesh/v1/GetRoutesResponse.ts';
import type { HealthCheck as _relaymesh_v1_HealthCheck, HealthCheck__Output as _relaymesh_v1_HealthCheck__Output } from './relaymesh/v1/HealthCheck.ts';
import type { Heartbeat as _relaymesh_v1_Heartbeat, Heartbeat__Output as _relaymesh_v1_Heartbeat__Output } from './relaymesh/v1/Heartbeat.ts';
import type { Leave as _relaymesh_v1_Leave, Leave__Output as _relaymesh_v1_Leave__Output } from './relaymesh/v1/Leave.ts';
import type { LinkInfo as _relaymesh_v1_LinkInfo, LinkInfo__Output as _relaymesh_v1_LinkInfo__Output } from './relaymesh/v1/LinkInfo.ts';
import type { ListNodesRequest as _relaymesh_v1_ListNodesRequest, ListNodesRequest__Output as _relaymesh_v1_ListNodesRequest__Output } from './relaymesh/v1/ListNodesRequest.ts';
import type { ListNodesResponse as _relaymesh_v1_ListNodesResponse, ListNodesResponse__Output as _relaymesh_v1_ListNodesResponse__Output } from './relaymesh/v1/ListNodesResponse.ts';
import type { MeasurementReport as _relaymesh_v1_MeasurementReport, MeasurementReport__Output as _relaymesh_v1_MeasurementReport__Output } from './relaymesh/v1/MeasurementReport.ts';
import type { Membership as _relaymesh_v1_Membership, Membership__Output as _relaymesh_v1_Membership__Output } from './relaymesh/v1/Membership.ts';
import type { NodeInfo as _relaymesh_v1_NodeInfo, NodeInfo__Output as _relaymesh_v1_NodeInfo__Output } from './relaymesh/v1/NodeInfo.ts';
import type { NodeMessage as _relaymesh_v1_NodeMessage, NodeMessage__Output as _relaymesh_v1_NodeMessage__Output } from './relaymesh/v1/NodeMessage.ts';
import type { OriginInfo as _relaymesh_v1_OriginInfo, OriginInfo__Output as _relaymesh_v1_OriginInfo__Output } from './relaymesh/v1/OriginInfo.ts';
import type { OriginLeg as _relaymesh_v1_OriginLeg, OriginLeg__Output as _relaymesh_v1_OriginLeg__Output } from './relaymesh/v1/OriginLeg.ts';
import type { OriginMeasurement as _relaymesh_v1_OriginMeasurement, OriginMeasurement__Output as _relaymesh_v1_OriginMeasurement__Output } from './relaymesh/v1/OriginMeasurement.ts';
import type { PathInfo as _relaymesh_v1_PathInfo, PathInfo__Output as _relaymesh_v1_PathInfo__Output } from './relaymesh/v1/PathInfo.ts';
import type { PeerMeasurement as _relaymesh_v1_PeerMeasurement, PeerMeasurement__Output as _relaymesh_v1_PeerMeasurement__Output } from './relaymesh/v1/PeerMeasurement.ts';
import type { RegisterRequest as _relaymesh_v1_RegisterRequest, RegisterRequest__Output as _relaymesh_v1_RegisterRequest__Output } from './relaymesh/v1/RegisterRequest.ts';
import type { RegisterResponse as _relaymesh_v1_RegisterResponse, RegisterResponse__Output as _relaymesh_v1_RegisterResponse__Output } from './relaymesh/v1/RegisterResponse.ts';
import type { Route as _relaymesh_v1_Route, Route__Output as _relaymesh_v1_Route__Output } from './relaymesh/v1/Route.ts';
import type { RouteTable as _relaymesh_v1_RouteTable, RouteTable__Output as _relaymesh_v1_RouteTable__Output } from './relaymesh/v1/RouteTable.ts';
import type { SessionHello as _relaymesh_v1_SessionHello, SessionHello__Output as _relaymesh_v1_SessionHello__Output } from './relaymesh/v1/SessionHello.ts';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  relaymesh: {
    v1: {
      Coordinator: SubtypeConstructor<typeof grpc.Client, _relaymesh_v1_CoordinatorClient> & { service: _relaymesh_v1_CoordinatorDefinition }
      CoordinatorMessage: MessageTypeDefinition<_relaymesh_v1_CoordinatorMessage, _relaymesh_v1_CoordinatorMessage__Output>
      GetRoutesRequest: MessageTypeDefinition<_relaymesh_v1_GetRoutesRequest, _relaymesh_v1_GetRoutesRequest__Output>
      GetRoutesResponse: MessageTypeDefinition<_relaymesh_v1_GetRoutesResponse, _relaymesh_v1_GetRoutesResponse__Output>
      HealthCheck: MessageTypeDefinition<_relaymesh_v1_HealthCheck, _relaymesh_v1_HealthCheck__Output>
      Heartbeat: MessageTypeDefinition<_relaymesh_v1_Heartbeat, _relaymesh_v1_Heartbeat__Output>
      Leave: MessageTypeDefinition<_relaymesh_v1_Leave, _relaymesh_v1_Leave__Output>
      LinkInfo: MessageTypeDefinition<_relaymesh_v1_LinkInfo, _relaymesh_v1_LinkInfo__Output>
      ListNodesRequest: MessageTypeDefinition<_relaymesh_v1_ListNodesRequest, _relaymesh_v1_ListNodesRequest__Output>
      ListNodesResponse: MessageTypeDefinition<_relaymesh_v1_ListNodesResponse, _relaymesh_v1_ListNodesResponse__Output>
      MeasurementReport: MessageTypeDefinition<_relaymesh_v1_MeasurementReport, _relaymesh_v1_MeasurementReport__Output>
      Membership: MessageTypeDefinition<_relaymesh_v1_Membership, _relaymesh_v1_Membership__Output>
      NodeInfo: MessageTypeDefinition<_relaymesh_v1_NodeInfo, _relaymesh_v1_NodeInfo__Output>
      NodeMessage: MessageTypeDefinition<_relaymesh_v1_NodeMessage, _relaymesh_v1_NodeMessage__Output>
      OriginInfo: MessageTypeDefinition<_relaymesh_v1_OriginInfo, _relaymesh_v1_OriginInfo__Output>
      OriginLeg: MessageTypeDefinition<_relaymesh_v1_OriginLeg, _relaymesh_v1_OriginLeg__Output>
      OriginMeasurement: MessageTypeDefinition<_relaymesh_v1_OriginMeasurement, _relaymesh_v1_OriginMeasurement__Output>
      PathInfo: MessageTypeDefinition<_relaymesh_v1_PathInfo, _relaymesh_v1_PathInfo__Output>
      PeerMeasurement: MessageTypeDefinition<_relaymesh_v1_PeerMeasurement, _relaymesh_v1_PeerMeasurement__Output>
      RegisterRequest: MessageTypeDefinition<_relaymesh_v1_RegisterRequest, _relaymesh_v1_RegisterRequest__Output>
      RegisterResponse: MessageTypeDefinition<_relaymesh_v1_RegisterResponse, _relaymesh_v1_RegisterResponse__Output>
      Route: MessageTypeDefinition<_relaymesh_v1_Route, _relaymesh_v1_Route__Output>
      RouteTable: MessageTypeDefinition<_relaymesh_v1_RouteTable, _relaymesh_v1_RouteTable__Output>
      SessionHello: MessageTypeDefinition<_relaymesh_v1_SessionHello, _relaymesh_v1_SessionHello__Output>
    }
  }
}

