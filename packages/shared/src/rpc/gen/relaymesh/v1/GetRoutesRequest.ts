// Original file: proto/coordinator.proto


export interface GetRoutesRequest {
  'from'?: (string);
  'origin'?: (string);
}

export interface GetRoutesRequest__Output {
  'from': (string);
  'origin': (string);
}
