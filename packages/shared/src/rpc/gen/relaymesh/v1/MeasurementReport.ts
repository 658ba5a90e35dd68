// Original file: proto/coordinator.proto

import type { PeerMeasurement as _relaymesh_v1_PeerMeasurement, PeerMeasurement__Output as _relaymesh_v1_PeerMeasurement__Output } from '../../relaymesh/v1/PeerMeasurement.ts';
import type { OriginMeasurement as _relaymesh_v1_OriginMeasurement, OriginMeasurement__Output as _relaymesh_v1_OriginMeasurement__Output } from '../../relaymesh/v1/OriginMeasurement.ts';

export interface MeasurementReport {
  'peers'?: (_relaymesh_v1_PeerMeasurement)[];
  'origins'?: (_relaymesh_v1_OriginMeasurement)[];
}

export interface MeasurementReport__Output {
  'peers': (_relaymesh_v1_PeerMeasurement__Output)[];
  'origins': (_relaymesh_v1_OriginMeasurement__Output)[];
}
