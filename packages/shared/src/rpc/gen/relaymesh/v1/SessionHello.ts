// Original file: proto/coordinator.proto

import type { Long } from '@grpc/proto-loader';

export interface SessionHello {
  'nodeId'?: (string);
  'sessionId'?: (string);
  'lastRouteVersion'?: (number | string | Long);
}

export interface SessionHello__Output {
  'nodeId': (string);
  'sessionId': (string);
  'lastRouteVersion': (number);
}
