// Original file: proto/coordinator.proto

import type { Long } from '@grpc/proto-loader';

export interface Heartbeat {
  'seq'?: (number | string | Long);
}

export interface Heartbeat__Output {
  'seq': (number);
}
