// Original file: proto/coordinator.proto


export interface LinkInfo {
  'from'?: (string);
  'to'?: (string);
  'rttMs'?: (number | string);
}

export interface LinkInfo__Output {
  'from': (string);
  'to': (string);
  'rttMs': (number);
}
