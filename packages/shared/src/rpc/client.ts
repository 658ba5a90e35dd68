import * as grpc from '@grpc/grpc-js';
import { tokenInterceptor } from './auth.ts';
import type { CoordinatorClient } from './gen/relaymesh/v1/Coordinator.ts';
import { loadCoordinatorProto } from './proto.ts';

/** Options for {@link createCoordinatorStub}. */
export interface CoordinatorStubOptions {
  /** HTTP/2 keepalive ping interval, so a vanished coordinator is noticed. @default 10000 */
  keepaliveTimeMs?: number;
  /** How long a keepalive ping may go unanswered. @default 5000 */
  keepaliveTimeoutMs?: number;
  /** Cap of grpc-js's own reconnect backoff. @default 5000 */
  maxReconnectBackoffMs?: number;
}

/**
 * A typed gRPC client for the coordinator at `address` (HOST:PORT), with the cluster token
 * attached to every call. Plaintext HTTP/2: run it on a private network or behind TLS
 * termination (docs/operations.md). Close it with `client.close()`.
 */
export function createCoordinatorStub(
  address: string,
  token: string,
  options: CoordinatorStubOptions = {},
): CoordinatorClient {
  const proto = loadCoordinatorProto();
  return new proto.Coordinator(address, grpc.credentials.createInsecure(), {
    interceptors: [tokenInterceptor(token)],
    'grpc.keepalive_time_ms': options.keepaliveTimeMs ?? 10_000,
    'grpc.keepalive_timeout_ms': options.keepaliveTimeoutMs ?? 5_000,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.initial_reconnect_backoff_ms': 200,
    'grpc.max_reconnect_backoff_ms': options.maxReconnectBackoffMs ?? 5_000,
  });
}

/** A deadline `ms` from now, for unary calls. */
export function deadlineIn(ms: number): Date {
  return new Date(Date.now() + ms);
}
