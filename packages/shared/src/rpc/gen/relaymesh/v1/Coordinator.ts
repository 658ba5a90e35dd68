// Original file: proto/coordinator.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { CoordinatorMessage as _relaymesh_v1_CoordinatorMessage, CoordinatorMessage__Output as _relaymesh_v1_CoordinatorMessage__Output } from '../../relaymesh/v1/CoordinatorMessage.ts';
import type { GetRoutesRequest as _relaymesh_v1_GetRoutesRequest, GetRoutesRequest__Output as _relaymesh_v1_GetRoutesRequest__Output } from '../../relaymesh/v1/GetRoutesRequest.ts';
import type { GetRoutesResponse as _relaymesh_v1_GetRoutesResponse, GetRoutesResponse__Output as _relaymesh_v1_GetRoutesResponse__Output } from '../../relaymesh/v1/GetRoutesResponse.ts';
import type { ListNodesRequest as _relaymesh_v1_ListNodesRequest, ListNodesRequest__Output as _relaymesh_v1_ListNodesRequest__Output } from '../../relaymesh/v1/ListNodesRequest.ts';
import type { ListNodesResponse as _relaymesh_v1_ListNodesResponse, ListNodesResponse__Output as _relaymesh_v1_ListNodesResponse__Output } from '../../relaymesh/v1/ListNodesResponse.ts';
import type { NodeMessage as _relaymesh_v1_NodeMessage, NodeMessage__Output as _relaymesh_v1_NodeMessage__Output } from '../../relaymesh/v1/NodeMessage.ts';
import type { RegisterRequest as _relaymesh_v1_RegisterRequest, RegisterRequest__Output as _relaymesh_v1_RegisterRequest__Output } from '../../relaymesh/v1/RegisterRequest.ts';
import type { RegisterResponse as _relaymesh_v1_RegisterResponse, RegisterResponse__Output as _relaymesh_v1_RegisterResponse__Output } from '../../relaymesh/v1/RegisterResponse.ts';

export interface CoordinatorClient extends grpc.Client {
  GetRoutes(argument: _relaymesh_v1_GetRoutesRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_relaymesh_v1_GetRoutesResponse__Output>): grpc.ClientUnaryCall;
  GetRoutes(argument: _relaymesh_v1_GetRoutesRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_relaymesh_v1_GetRoutesResponse__Output>): grpc.ClientUnaryCall;
  GetRoutes(argument: _relaymesh_v1_GetRoutesRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_relaymesh_v1_GetRoutesResponse__Output>): grpc.ClientUnaryCall;
  GetRoutes(argument: _relaymesh_v1_GetRoutesRequest, callback: grpc.requestCallback<_relaymesh_v1_GetRoutesResponse__Output>): grpc.ClientUnaryCall;
  getRoutes(argument: _relaymesh_v1_GetRoutesRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_relaymesh_v1_GetRoutesResponse__Output>): grpc.ClientUnaryCall;
  getRoutes(argument: _relaymesh_v1_GetRoutesRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_relaymesh_v1_GetRoutesResponse__Output>): grpc.ClientUnaryCall;
  getRoutes(argument: _relaymesh_v1_GetRoutesRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_relaymesh_v1_GetRoutesResponse__Output>): grpc.ClientUnaryCall;
  getRoutes(argument: _relaymesh_v1_GetRoutesRequest, callback: grpc.requestCallback<_relaymesh_v1_GetRoutesResponse__Output>): grpc.ClientUnaryCall;
  
  ListNodes(argument: _relaymesh_v1_ListNodesRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_relaymesh_v1_ListNodesResponse__Output>): grpc.ClientUnaryCall;
  ListNodes(argument: _relaymesh_v1_ListNodesRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_relaymesh_v1_ListNodesResponse__Output>): grpc.ClientUnaryCall;
  ListNodes(argument: _relaymesh_v1_ListNodesRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_relaymesh_v1_ListNodesResponse__Output>): grpc.ClientUnaryCall;
  ListNodes(argument: _relaymesh_v1_ListNodesRequest, callback: grpc.requestCallback<_relaymesh_v1_ListNodesResponse__Output>): grpc.ClientUnaryCall;
  listNodes(argument: _relaymesh_v1_ListNodesRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_relaymesh_v1_ListNodesResponse__Output>): grpc.ClientUnaryCall;
  listNodes(argument: _relaymesh_v1_ListNodesRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_relaymesh_v1_ListNodesResponse__Output>): grpc.ClientUnaryCall;
  listNodes(argument: _relaymesh_v1_ListNodesRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_relaymesh_v1_ListNodesResponse__Output>): grpc.ClientUnaryCall;
  listNodes(argument: _relaymesh_v1_ListNodesRequest, callback: grpc.requestCallback<_relaymesh_v1_ListNodesResponse__Output>): grpc.ClientUnaryCall;
  
  Register(argument: _relaymesh_v1_RegisterRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_relaymesh_v1_RegisterResponse__Output>): grpc.ClientUnaryCall;
  Register(argument: _relaymesh_v1_RegisterRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_relaymesh_v1_RegisterResponse__Output>): grpc.ClientUnaryCall;
  Register(argument: _relaymesh_v1_RegisterRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_relaymesh_v1_RegisterResponse__Output>): grpc.ClientUnaryCall;
  Register(argument: _relaymesh_v1_RegisterRequest, callback: grpc.requestCallback<_relaymesh_v1_RegisterResponse__Output>): grpc.ClientUnaryCall;
  register(argument: _relaymesh_v1_RegisterRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_relaymesh_v1_RegisterResponse__Output>): grpc.ClientUnaryCall;
  register(argument: _relaymesh_v1_RegisterRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_relaymesh_v1_RegisterResponse__Output>): grpc.ClientUnaryCall;
  register(argument: _relaymesh_v1_RegisterRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_relaymesh_v1_RegisterResponse__Output>): grpc.ClientUnaryCall;
  register(argument: _relaymesh_v1_RegisterRequest, callback: grpc.requestCallback<_relaymesh_v1_RegisterResponse__Output>): grpc.ClientUnaryCall;
  
  Session(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_relaymesh_v1_NodeMessage, _relaymesh_v1_CoordinatorMessage__Output>;
  Session(options?: grpc.CallOptions): grpc.ClientDuplexStream<_relaymesh_v1_NodeMessage, _relaymesh_v1_CoordinatorMessage__Output>;
  session(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_relaymesh_v1_NodeMessage, _relaymesh_v1_CoordinatorMessage__Output>;
  session(options?: grpc.CallOptions): grpc.ClientDuplexStream<_relaymesh_v1_NodeMessage, _relaymesh_v1_CoordinatorMessage__Output>;
  
}

export interface CoordinatorHandlers extends grpc.UntypedServiceImplementation {
  GetRoutes: grpc.handleUnaryCall<_relaymesh_v1_GetRoutesRequest__Output, _relaymesh_v1_GetRoutesResponse>;
  
  ListNodes: grpc.handleUnaryCall<_relaymesh_v1_ListNodesRequest__Output, _relaymesh_v1_ListNodesResponse>;
  
  Register: grpc.handleUnaryCall<_relaymesh_v1_RegisterRequest__Output, _relaymesh_v1_RegisterResponse>;
  
  Session: grpc.handleBidiStreamingCall<_relaymesh_v1_NodeMessage__Output, _relaymesh_v1_CoordinatorMessage>;
  
}

export interface CoordinatorDefinition extends grpc.ServiceDefinition {
  GetRoutes: MethodDefinition<_relaymesh_v1_GetRoutesRequest, _relaymesh_v1_GetRoutesResponse, _relaymesh_v1_GetRoutesRequest__Output, _relaymesh_v1_GetRoutesResponse__Output>
  ListNodes: MethodDefinition<_relaymesh_v1_ListNodesRequest, _relaymesh_v1_ListNodesResponse, _relaymesh_v1_ListNodesRequest__Output, _relaymesh_v1_ListNodesResponse__Output>
  Register: MethodDefinition<_relaymesh_v1_RegisterRequest, _relaymesh_v1_RegisterResponse, _relaymesh_v1_RegisterRequest__Output, _relaymesh_v1_RegisterResponse__Output>
  Session: MethodDefinition<_relaymesh_v1_NodeMessage, _relaymesh_v1_CoordinatorMessage, _relaymesh_v1_NodeMessage__Output, _relaymesh_v1_CoordinatorMessage__Output>
}
