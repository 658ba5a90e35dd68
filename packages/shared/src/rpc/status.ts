import * as grpc from '@grpc/grpc-js';
import { isRelayError, RelayError } from '../errors/base.ts';
import { ERROR_CODES, type ErrorCode } from '../errors/codes.ts';

/** Trailer that carries the relaymesh error code next to the gRPC status. */
export const ERROR_CODE_METADATA_KEY = 'relaymesh-code';

const STATUS_OF: Partial<Record<ErrorCode, grpc.status>> = {
  ERR_COORD_UNAUTHENTICATED: grpc.status.UNAUTHENTICATED,
  ERR_COORD_UNKNOWN_NODE: grpc.status.NOT_FOUND,
  ERR_COORD_UNKNOWN_ORIGIN: grpc.status.NOT_FOUND,
  ERR_COORD_SESSION_UNKNOWN: grpc.status.FAILED_PRECONDITION,
  ERR_COORD_TOO_MANY_NODES: grpc.status.RESOURCE_EXHAUSTED,
  ERR_COORD_BAD_REQUEST: grpc.status.INVALID_ARGUMENT,
  ERR_CLOSED: grpc.status.UNAVAILABLE,
  ERR_COORD_UNAVAILABLE: grpc.status.UNAVAILABLE,
};

/**
 * Maps an error to the status object grpc-js sends: RelayErrors keep their message and
 * carry their code in the `relaymesh-code` trailer; anything else is INTERNAL without
 * its message (no internals leak to callers).
 */
export function toGrpcStatus(err: unknown): Partial<grpc.StatusObject> {
  const metadata = new grpc.Metadata();
  if (!isRelayError(err)) {
    metadata.set(ERROR_CODE_METADATA_KEY, 'ERR_INTERNAL');
    return { code: grpc.status.INTERNAL, details: 'internal error', metadata };
  }
  const e = err as RelayError;
  metadata.set(ERROR_CODE_METADATA_KEY, e.code);
  return { code: STATUS_OF[e.code] ?? grpc.status.INTERNAL, details: e.message, metadata };
}

/**
 * Maps a failed call (grpc-js ServiceError) back to a RelayError: the trailer's code when
 * present, else by status (UNAUTHENTICATED, UNAVAILABLE/DEADLINE_EXCEEDED, other).
 */
export function fromGrpcError(err: unknown): RelayError {
  if (isRelayError(err)) return err as RelayError;
  const e = err as Partial<grpc.ServiceError>;
  const trailer = e.metadata?.get(ERROR_CODE_METADATA_KEY)[0];
  const details = typeof e.details === 'string' && e.details !== '' ? e.details : String(e.message);
  if (typeof trailer === 'string' && trailer in ERROR_CODES) {
    return new RelayError(trailer as ErrorCode, details, { cause: err });
  }
  switch (e.code) {
    case grpc.status.UNAUTHENTICATED:
      return new RelayError(
        'ERR_COORD_UNAUTHENTICATED',
        `coordinator rejected the token: ${details}`,
        { cause: err },
      );
    case grpc.status.UNAVAILABLE:
    case grpc.status.DEADLINE_EXCEEDED:
      return new RelayError('ERR_COORD_UNAVAILABLE', `coordinator unreachable: ${details}`, {
        cause: err,
      });
    default:
      return new RelayError('ERR_COORD_RPC', `coordinator call failed: ${details}`, {
        cause: err,
        details: { grpcCode: e.code },
      });
  }
}
