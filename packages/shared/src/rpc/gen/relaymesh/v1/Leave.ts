// Original file: proto/coordinator.proto


export interface Leave {
}

export interface Leave__Output {
}
