import net from 'node:net';
import { RelayError } from '../errors/base.ts';

/** Where to connect. */
export interface DialTarget {
  host: string;
  port: number;
}

export interface DialOptions {
  /** Give up after this long (connect, or the whole CONNECT exchange). @default 10000 */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/**
 * The one way a node opens outbound TCP connections (to peers, to origins). Direct by
 * default; through an HTTP CONNECT egress proxy when configured.
 *
 * Resolves with a connected socket; rejects with a RelayError: ERR_DIAL_TIMEOUT,
 * ERR_DIAL_REFUSED, ERR_DIAL_PROXY_REJECTED or ERR_DIAL_PROXY_PROTOCOL.
 */
export interface Dialer {
  dial(target: DialTarget, options?: DialOptions): Promise<net.Socket>;
  /** For logs: "direct" or "http-connect via HOST:PORT". */
  readonly description: string;
}

export const DEFAULT_DIAL_TIMEOUT_MS = 10_000;

/** Connects straight to the target. */
export class DirectDialer implements Dialer {
  readonly description = 'direct';

  dial(target: DialTarget, options: DialOptions = {}): Promise<net.Socket> {
    return connectTcp(target, options);
  }
}

/**
 * Opens a TCP connection with a timeout and abort signal, mapping failures to RelayErrors.
 * Exported for dialers that first reach a proxy.
 */
export function connectTcp(target: DialTarget, options: DialOptions = {}): Promise<net.Socket> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: target.host, port: target.port });
    const where = `${target.host}:${target.port}`;
    const timer = setTimeout(
      () =>
        fail(
          new RelayError('ERR_DIAL_TIMEOUT', `connect to ${where} timed out after ${timeoutMs} ms`),
        ),
      timeoutMs,
    );
    const onAbort = () =>
      fail(
        new RelayError('ERR_DIAL_REFUSED', `connect to ${where} aborted`, {
          cause: options.signal?.reason,
        }),
      );
    const cleanup = () => {
      clearTimeout(timer);
      socket.off('connect', onConnect);
      socket.off('error', onError);
      options.signal?.removeEventListener('abort', onAbort);
    };
    const fail = (err: RelayError) => {
      cleanup();
      socket.destroy();
      reject(err);
    };
    const onError = (err: Error) =>
      fail(
        new RelayError(
          'ERR_DIAL_REFUSED',
          `connect to ${where} failed: ${(err as NodeJS.ErrnoException).code ?? err.message}`,
          { cause: err },
        ),
      );
    const onConnect = () => {
      cleanup();
      socket.setNoDelay(true);
      resolve(socket);
    };
    if (options.signal?.aborted) return onAbort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', onConnect);
    socket.once('error', onError);
  });
}
