// Original file: proto/coordinator.proto


export interface RegisterRequest {
  'nodeId'?: (string);
  'region'?: (string);
  'advertise'?: (string);
  'httpAdvertise'?: (string);
  'version'?: (string);
}

export interface RegisterRequest__Output {
  'nodeId': (string);
  'region': (string);
  'advertise': (string);
  'httpAdvertise': (string);
  'version': (string);
}
