import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { ProtoGrpcType } from './gen/coordinator.ts';

/**
 * Runtime loading options. They must match the `gen:rpc` flags (--longs=Number
 * --enums=String --defaults --oneofs), or the generated types would lie about the objects.
 */
export const PROTO_LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

/**
 * Absolute path of coordinator.proto. Same relative depth from src/rpc and dist/rpc, so it
 * resolves from sources (tests, tsx) and from the build alike.
 */
export const COORDINATOR_PROTO_PATH = fileURLToPath(
  new URL('../../proto/coordinator.proto', import.meta.url),
);

/** The `relaymesh.v1` package: service constructor and message definitions. */
export type CoordinatorProto = ProtoGrpcType['relaymesh']['v1'];

let loaded: CoordinatorProto | undefined;

/** Parses coordinator.proto once per process and returns the `relaymesh.v1` package. */
export function loadCoordinatorProto(): CoordinatorProto {
  if (loaded === undefined) {
    const definition = protoLoader.loadSync(COORDINATOR_PROTO_PATH, PROTO_LOADER_OPTIONS);
    const root = grpc.loadPackageDefinition(definition) as unknown as ProtoGrpcType;
    loaded = root.relaymesh.v1;
  }
  return loaded;
}
