// Original file: proto/coordinator.proto


export interface HealthCheck {
  'path'?: (string);
  'intervalMs'?: (number);
  'timeoutMs'?: (number);
}

export interface HealthCheck__Output {
  'path': (string);
  'intervalMs': (number);
  'timeoutMs': (number);
}
