// Original file: proto/coordinator.proto


export interface PeerMeasurement {
  'peerId'?: (string);
  'srttMs'?: (number | string);
  'jitterMs'?: (number | string);
  'reachable'?: (boolean);
  'baseRttMs'?: (number | string);
  'capacityBps'?: (number | string);
  'peakCapacityBps'?: (number | string);
}

export interface PeerMeasurement__Output {
  'peerId': (string);
  'srttMs': (number);
  'jitterMs': (number);
  'reachable': (boolean);
  'baseRttMs': (number);
  'capacityBps': (number);
  'peakCapacityBps': (number);
}
