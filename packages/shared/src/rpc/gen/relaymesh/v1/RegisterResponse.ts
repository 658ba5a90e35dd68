// Original file: proto/coordinator.proto


export interface RegisterResponse {
  'sessionId'?: (string);
  'heartbeatIntervalMs'?: (number);
  'leaseMs'?: (number);
  'reportIntervalMs'?: (number);
}

export interface RegisterResponse__Output {
  'sessionId': (string);
  'heartbeatIntervalMs': (number);
  'leaseMs': (number);
  'reportIntervalMs': (number);
}
