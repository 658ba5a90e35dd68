// Original file: proto/coordinator.proto


export interface PeerMeasurement {
  'peerId'?: (string);
  'srttMs'?: (number | string);
  'jitterMs'?: (number | string);
  'reachable'?: (boolean);
}

export interface PeerMeasurement__Output {
  'peerId': (string);
  'srttMs': (number);
  'jitterMs': (number);
  'reachable': (boolean);
}
