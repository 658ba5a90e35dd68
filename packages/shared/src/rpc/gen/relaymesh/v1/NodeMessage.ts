// Original file: proto/coordinator.proto

import type { SessionHello as _relaymesh_v1_SessionHello, SessionHello__Output as _relaymesh_v1_SessionHello__Output } from '../../relaymesh/v1/SessionHello.ts';
import type { Heartbeat as _relaymesh_v1_Heartbeat, Heartbeat__Output as _relaymesh_v1_Heartbeat__Output } from '../../relaymesh/v1/Heartbeat.ts';
import type { MeasurementReport as _relaymesh_v1_MeasurementReport, MeasurementReport__Output as _relaymesh_v1_MeasurementReport__Output } from '../../relaymesh/v1/MeasurementReport.ts';
import type { Leave as _relaymesh_v1_Leave, Leave__Output as _relaymesh_v1_Leave__Output } from '../../relaymesh/v1/Leave.ts';

export interface NodeMessage {
  'hello'?: (_relaymesh_v1_SessionHello | null);
  'heartbeat'?: (_relaymesh_v1_Heartbeat | null);
  'report'?: (_relaymesh_v1_MeasurementReport | null);
  'leave'?: (_relaymesh_v1_Leave | null);
  'body'?: "hello"|"heartbeat"|"report"|"leave";
}

export interface NodeMessage__Output {
  'hello'?: (_relaymesh_v1_SessionHello__Output | null);
  'heartbeat'?: (_relaymesh_v1_Heartbeat__Output | null);
  'report'?: (_relaymesh_v1_MeasurementReport__Output | null);
  'leave'?: (_relaymesh_v1_Leave__Output | null);
  'body'?: "hello"|"heartbeat"|"report"|"leave";
}
