// Original file: proto/coordinator.proto

import type { PathInfo as _relaymesh_v1_PathInfo, PathInfo__Output as _relaymesh_v1_PathInfo__Output } from '../../relaymesh/v1/PathInfo.ts';

export interface Route {
  'from'?: (string);
  'origin'?: (string);
  'path'?: (string)[];
  'rttMs'?: (number | string);
  'alternates'?: (_relaymesh_v1_PathInfo)[];
}

export interface Route__Output {
  'from': (string);
  'origin': (string);
  'path': (string)[];
  'rttMs': (number);
  'alternates': (_relaymesh_v1_PathInfo__Output)[];
}
