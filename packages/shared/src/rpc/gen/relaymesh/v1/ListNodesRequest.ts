// Original file: proto/coordinator.proto


export interface ListNodesRequest {
}

export interface ListNodesRequest__Output {
}
