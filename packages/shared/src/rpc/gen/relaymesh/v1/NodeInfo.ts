// Original file: proto/coordinator.proto


export interface NodeInfo {
  'id'?: (string);
  'region'?: (string);
  'advertise'?: (string);
  'httpAdvertise'?: (string);
  'status'?: (string);
  'version'?: (string);
}

export interface NodeInfo__Output {
  'id': (string);
  'region': (string);
  'advertise': (string);
  'httpAdvertise': (string);
  'status': (string);
  'version': (string);
}
