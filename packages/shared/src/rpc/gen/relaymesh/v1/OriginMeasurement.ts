// Original file: proto/coordinator.proto


export interface OriginMeasurement {
  'origin'?: (string);
  'upstream'?: (string);
  'rttMs'?: (number | string);
  'reachable'?: (boolean);
}

export interface OriginMeasurement__Output {
  'origin': (string);
  'upstream': (string);
  'rttMs': (number);
  'reachable': (boolean);
}
