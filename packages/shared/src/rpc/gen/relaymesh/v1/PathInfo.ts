// Original file: proto/coordinator.proto


export interface PathInfo {
  'path'?: (string)[];
  'rttMs'?: (number | string);
}

export interface PathInfo__Output {
  'path': (string)[];
  'rttMs': (number);
}
