import type { Socket } from 'node:net';
import { type Dialer, isRelayError } from '@relaymesh/shared';
import {
  DATA_PLANE_VERSION,
  encodePrefixed,
  type OpenHeader,
  type RequestHead,
} from '../open-header.ts';
import { splice } from '../splice.ts';
import type { HopStream } from '../types.ts';
import { replyError } from './http-exit.ts';
import type { Upstream, UpstreamPool } from './upstream-pool.ts';

/**
 * Which upstreams a raw stream may reach. CONNECT (port given): upstreams declared with
 * that port, and port 80 also means "the origin's http upstreams". `--forward` (no port):
 * tcp upstreams, else every upstream. 'upgrade' streams: http upstreams.
 */
export function rawUpstreamFilter(header: OpenHeader): (u: Upstream) => boolean {
  if (header.kind === 'upgrade') return (u) => u.address.scheme === 'http';
  const port = header.port;
  if (port !== undefined) {
    return (u) => u.address.port === port || (port === 80 && u.address.scheme === 'http');
  }
  return (u) => u.address.scheme === 'tcp';
}

/** The HTTP/1.1 request head bytes replayed to the origin for a WebSocket upgrade. */
export function serializeRequestHead(head: RequestHead): Buffer {
  let text = `${head.method} ${head.target} HTTP/1.1\r\n`;
  for (const [name, value] of head.headers) text += `${name}: ${value}\r\n`;
  return Buffer.from(`${text}\r\n`, 'latin1');
}

async function dialAny(
  pool: UpstreamPool,
  dialer: Dialer,
  accept: (u: Upstream) => boolean,
): Promise<{ socket: Socket; upstream: Upstream } | { error: unknown }> {
  const tried = new Set<Upstream>();
  let error: unknown;
  for (;;) {
    const upstream = pool.pick(accept, tried);
    if (!upstream) return { error: error ?? new Error('no upstream declared for this port') };
    tried.add(upstream);
    try {
      const socket = await dialer.dial(upstream.address, { timeoutMs: pool.connectTimeoutMs });
      pool.reportSuccess(upstream);
      return { socket, upstream };
    } catch (err) {
      pool.reportFailure(upstream, (err as Error).message);
      error = err;
    }
  }
}

/**
 * Serves a 'tcp' or 'upgrade' stream at the exit: connects to an upstream through the
 * dialer (trying the next one when a connect fails), answers a 200 RESPONSE HEAD, replays
 * the request head for upgrades, then splices stream and socket with half-close.
 * Never rejects.
 */
export async function serveRaw(
  stream: HopStream,
  header: OpenHeader,
  pool: UpstreamPool,
  dialer: Dialer,
): Promise<void> {
  stream.pause();
  const accept = rawUpstreamFilter(header);
  if (!pool.upstreams.some(accept)) {
    replyError(
      stream,
      502,
      'ERR_PROXY_NOT_DECLARED',
      `origin ${header.origin} declares no upstream for this stream`,
    );
    return;
  }
  const result = await dialAny(pool, dialer, accept);
  if ('error' in result) {
    const err = result.error;
    // Nothing reached an upstream: the entry may try another exit (retry.ts).
    const timeout = isRelayError(err, 'ERR_DIAL_TIMEOUT');
    const message = `origin ${header.origin} ${timeout ? 'connect timed out' : 'unreachable'}: ${(err as Error).message}`;
    replyError(stream, timeout ? 504 : 502, 'ERR_PROXY_UPSTREAM_CONNECT', message);
    return;
  }
  const { socket, upstream } = result;
  // Half-close both ways: a FIN from the origin must not end our side towards it.
  socket.allowHalfOpen = true;
  if (stream.destroyed) {
    socket.destroy();
    return;
  }
  upstream.outstanding += 1;
  stream.write(encodePrefixed({ v: DATA_PLANE_VERSION, status: 200, headers: [] }));
  if (header.kind === 'upgrade') socket.write(serializeRequestHead(header.head as RequestHead));
  await splice(stream, socket as unknown as HopStream);
  upstream.outstanding -= 1;
}
