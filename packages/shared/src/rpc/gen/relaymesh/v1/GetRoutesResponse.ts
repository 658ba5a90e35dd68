// Original file: proto/coordinator.proto

import type { Route as _relaymesh_v1_Route, Route__Output as _relaymesh_v1_Route__Output } from '../../relaymesh/v1/Route.ts';
import type { Long } from '@grpc/proto-loader';

export interface GetRoutesResponse {
  'version'?: (number | string | Long);
  'routes'?: (_relaymesh_v1_Route)[];
}

export interface GetRoutesResponse__Output {
  'version': (number);
  'routes': (_relaymesh_v1_Route__Output)[];
}
