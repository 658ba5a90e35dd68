import type { IncomingMessage } from 'node:http';
import { WireCode } from '@relaymesh/shared';
import type { EntryFailure } from '../entry-connector.ts';
import type { HeaderPairs, ResponseHead } from '../open-header.ts';

/** Request bodies up to this size are buffered so that the request can be replayed. */
export const RETRY_BODY_LIMIT = 64 * 1024;

/**
 * Tries in all (the first one included) while every failure is a refusal ({@link isRefusal}):
 * each goes over a path not tried yet. A broken path (not a refusal) gets one retry.
 */
export const MAX_REFUSED_TRIES = 3;

/**
 * Whether a request whose try number `tries` failed before its response head may be sent
 * once more on another path: while hops refuse it unprocessed (`resetCode`), up to
 * {@link MAX_REFUSED_TRIES} tries in all; after any other broken path, once, when the
 * request is `replayable` (idempotent, or nothing of the client's went out yet).
 */
export function mayTryAgain(
  tries: number,
  failure: EntryFailure,
  resetCode: WireCode | undefined,
  replayable: boolean,
): boolean {
  if (isRefusal(resetCode)) return tries < MAX_REFUSED_TRIES;
  return replayable && tries < 2 && isPathFailure(failure);
}

/**
 * Whether an exit's error head says it could not connect to any upstream of the origin
 * (refused, unreachable, or the connect timed out: ERR_PROXY_UPSTREAM_CONNECT). No upstream
 * got the request then, or it is idempotent without a body (the exit tries another
 * upstream after a request went out only then), so another exit may serve it whatever its
 * method: one more try, through a path that ends at another exit. Another exit's link to
 * the origin may be up when this one's is cut; the path to the exit is not at fault.
 */
export function exitCouldNotConnect(head: ResponseHead): boolean {
  return head.error?.code === 'ERR_PROXY_UPSTREAM_CONNECT';
}

/** RFC 9110 9.2.2 idempotent methods. */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** Whether the client allows a replay: an idempotent method, or an `Idempotency-Key` field. */
export function isIdempotent(method: string, headers: HeaderPairs): boolean {
  if (IDEMPOTENT.has(method.toUpperCase())) return true;
  return headers.some(([n]) => n.toLowerCase() === 'idempotency-key');
}

/**
 * RST codes that mean "refused before anyone processed it": a hop's session refused the
 * SYN (draining: GOING_AWAY; stream limit: REFUSED_STREAM; memory: MEMORY_LIMIT), a
 * closing stream server refused it before reading the open header (REFUSED_STREAM), or a
 * relay could not open its next hop (NO_ROUTE: sent only then, before it forwarded a byte;
 * e.g. the next hop is restarting). Relays pass the code on unchanged, so the entry sees it
 * whichever hop refused. Such a request may be replayed whatever its method (HTTP/2
 * REFUSED_STREAM semantics, RFC 9113 8.7).
 */
export function isRefusal(code: WireCode | undefined): boolean {
  return (
    code === WireCode.GOING_AWAY ||
    code === WireCode.REFUSED_STREAM ||
    code === WireCode.MEMORY_LIMIT ||
    code === WireCode.NO_ROUTE
  );
}

/**
 * Reads the whole request body when it is small enough to replay (`bodyLength` known and
 * at most `limit`); resolves null when it must be streamed instead (larger or chunked:
 * such a request is never retried). Rejects when the client aborts the body.
 */
export function bufferBody(
  req: IncomingMessage,
  bodyLength: number,
  limit = RETRY_BODY_LIMIT,
): Promise<Buffer | null> {
  if (bodyLength === 0) return Promise.resolve(Buffer.alloc(0));
  if (bodyLength < 0 || bodyLength > limit) return Promise.resolve(null);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', reject);
    req.once('close', () => {
      if (!req.complete) reject(new Error('client aborted the request body'));
    });
  });
}

/**
 * Whether a failure before the response head is a broken path (worth one retry elsewhere):
 * a reset or a dead stream. Timeouts are not (the exit or origin is slow, not the path,
 * and the client has waited long enough).
 */
export function isPathFailure(f: EntryFailure): boolean {
  return f.code !== 'ERR_PROXY_HEAD_TIMEOUT' && f.code !== 'ERR_PROXY_UPSTREAM_TIMEOUT';
}
