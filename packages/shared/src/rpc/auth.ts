import { createHash, timingSafeEqual } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';

/** Metadata key that carries the cluster token on every coordinator call. */
export const TOKEN_METADATA_KEY = 'authorization';

const BEARER = 'Bearer ';

/** The metadata value for a token: `Bearer <token>`. */
export function bearerValue(token: string): string {
  return `${BEARER}${token}`;
}

/**
 * Extracts the token from call metadata; undefined when absent or not a Bearer value.
 */
export function tokenFromMetadata(metadata: grpc.Metadata): string | undefined {
  const values = metadata.get(TOKEN_METADATA_KEY);
  const first = values[0];
  if (values.length !== 1 || typeof first !== 'string' || !first.startsWith(BEARER)) {
    return undefined;
  }
  return first.slice(BEARER.length);
}

/**
 * Constant-time token comparison. Both sides are hashed first so that the comparison
 * time does not depend on where the strings differ nor leak the expected length.
 */
export function tokensEqual(expected: string, presented: string | undefined): boolean {
  if (presented === undefined) return false;
  const a = createHash('sha256').update(expected, 'utf8').digest();
  const b = createHash('sha256').update(presented, 'utf8').digest();
  return timingSafeEqual(a, b);
}

/** A client interceptor that adds the token to every outgoing call's metadata. */
export function tokenInterceptor(token: string): grpc.Interceptor {
  const value = bearerValue(token);
  return (options, nextCall) =>
    new grpc.InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        metadata.set(TOKEN_METADATA_KEY, value);
        next(metadata, listener);
      },
    });
}
