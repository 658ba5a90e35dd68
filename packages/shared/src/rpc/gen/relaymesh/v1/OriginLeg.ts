// Original file: proto/coordinator.proto


export interface OriginLeg {
  'node'?: (string);
  'origin'?: (string);
  'rttMs'?: (number | string);
}

export interface OriginLeg__Output {
  'node': (string);
  'origin': (string);
  'rttMs': (number);
}
