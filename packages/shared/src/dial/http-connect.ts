import type net from 'node:net';
import { RelayError } from '../errors/base.ts';
import {
  connectTcp,
  DEFAULT_DIAL_TIMEOUT_MS,
  type Dialer,
  type DialOptions,
  type DialTarget,
} from './dialer.ts';

/** The proxy's response head may not exceed this; anything longer is not a CONNECT reply. */
export const MAX_CONNECT_RESPONSE_HEAD_BYTES = 8 * 1024;

const HEAD_END = Buffer.from('\r\n\r\n');
const STATUS_LINE = /^HTTP\/1\.[01] (\d{3})(?: ([^\r\n]*))?$/;

export interface HttpConnectDialerOptions {
  /** Default for {@link DialOptions.timeoutMs}: covers TCP connect plus the CONNECT exchange. @default 10000 */
  timeoutMs?: number;
}

/**
 * Dials through an HTTP/1.1 CONNECT proxy (`http://[user:pass@]host:port`).
 *
 * ```
 * dialer ── TCP ──> proxy
 *        ── CONNECT host:port HTTP/1.1 ──>
 *        <── HTTP/1.1 200 ... \r\n\r\n ──  (then the socket is the tunnel)
 * ```
 *
 * Rejects with ERR_DIAL_TIMEOUT (proxy unreachable in time, or accepted TCP and never
 * answered), ERR_DIAL_REFUSED (proxy refused TCP, or aborted), ERR_DIAL_PROXY_REJECTED
 * (non-2xx; `details.status`), ERR_DIAL_PROXY_PROTOCOL (not an HTTP response, head over 8 KiB,
 * or the proxy closed before answering). Credentials go only into the Proxy-Authorization
 * header: never into `description`, messages or details.
 */
export class HttpConnectDialer implements Dialer {
  readonly description: string;
  readonly #proxy: DialTarget;
  readonly #authorization: string | undefined;
  readonly #timeoutMs: number;

  /** @throws ERR_CONFIG_INVALID when the URL is not `http://host:port`. */
  constructor(proxyUrl: string | URL, options: HttpConnectDialerOptions = {}) {
    const url = parseProxyUrl(proxyUrl);
    const port = url.port === '' ? 80 : Number(url.port);
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    this.#proxy = { host, port };
    this.#authorization =
      url.username === ''
        ? undefined
        : `Basic ${Buffer.from(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`).toString('base64')}`;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS;
    this.description = `http-connect via ${formatHostPort(this.#proxy)}`;
  }

  async dial(target: DialTarget, options: DialOptions = {}): Promise<net.Socket> {
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    const deadline = performance.now() + timeoutMs;
    const connectOptions: DialOptions = { timeoutMs };
    if (options.signal) connectOptions.signal = options.signal;
    const socket = await connectTcp(this.#proxy, connectOptions);
    const remainingMs = Math.max(1, deadline - performance.now());
    return handshake(socket, {
      proxy: formatHostPort(this.#proxy),
      target,
      authorization: this.#authorization,
      timeoutMs: remainingMs,
      totalTimeoutMs: timeoutMs,
      signal: options.signal,
    });
  }
}

interface HandshakeArgs {
  proxy: string;
  target: DialTarget;
  authorization: string | undefined;
  timeoutMs: number;
  totalTimeoutMs: number;
  signal: AbortSignal | undefined;
}

function handshake(socket: net.Socket, args: HandshakeArgs): Promise<net.Socket> {
  const where = formatHostPort(args.target);
  return new Promise((resolve, reject) => {
    let head = Buffer.alloc(0);
    const timer = setTimeout(
      () =>
        fail(
          new RelayError(
            'ERR_DIAL_TIMEOUT',
            `connect to ${where} via ${args.proxy} timed out after ${args.totalTimeoutMs} ms`,
            { details: { proxy: args.proxy, target: where } },
          ),
        ),
      args.timeoutMs,
    );
    const cleanup = () => {
      clearTimeout(timer);
      socket.off('readable', onReadable);
      socket.off('error', onError);
      socket.off('end', onEnd);
      args.signal?.removeEventListener('abort', onAbort);
    };
    const fail = (err: RelayError) => {
      cleanup();
      socket.destroy();
      reject(err);
    };
    const protocolError = (what: string) =>
      new RelayError('ERR_DIAL_PROXY_PROTOCOL', `egress proxy ${args.proxy} ${what}`, {
        details: { proxy: args.proxy, target: where },
      });
    const onAbort = () =>
      fail(
        new RelayError('ERR_DIAL_REFUSED', `connect to ${where} via ${args.proxy} aborted`, {
          cause: args.signal?.reason,
        }),
      );
    const onError = (err: Error) =>
      fail(
        new RelayError(
          'ERR_DIAL_REFUSED',
          `connect to ${where} via ${args.proxy} failed: ${(err as NodeJS.ErrnoException).code ?? err.message}`,
          { cause: err },
        ),
      );
    const onEnd = () => fail(protocolError('closed the connection before answering CONNECT'));
    const onReadable = () => {
      for (let chunk = socket.read() as Buffer | null; chunk; chunk = socket.read()) {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf(HEAD_END);
        if (end === -1) {
          if (head.length > MAX_CONNECT_RESPONSE_HEAD_BYTES)
            return fail(
              protocolError(`sent a response head over ${MAX_CONNECT_RESPONSE_HEAD_BYTES} bytes`),
            );
          continue;
        }
        return settle(head.subarray(0, end), head.subarray(end + HEAD_END.length));
      }
    };
    const settle = (headBytes: Buffer, rest: Buffer) => {
      const statusLine = headBytes.toString('latin1').split('\r\n', 1)[0] ?? '';
      const m = STATUS_LINE.exec(statusLine);
      if (!m)
        return fail(
          protocolError(`sent a non-HTTP reply: ${JSON.stringify(statusLine.slice(0, 80))}`),
        );
      const status = Number(m[1]);
      if (status < 200 || status > 299) {
        const reason = m[2] ?? '';
        return fail(
          new RelayError(
            'ERR_DIAL_PROXY_REJECTED',
            `egress proxy ${args.proxy} refused CONNECT ${where}: ${status} ${reason}`.trimEnd(),
            { details: { proxy: args.proxy, target: where, status, reason } },
          ),
        );
      }
      cleanup();
      // Bytes the far end sent right after the head belong to the tunnel, not to us.
      if (rest.length > 0) socket.unshift(rest);
      socket.setNoDelay(true);
      resolve(socket);
    };
    if (args.signal?.aborted) return onAbort();
    args.signal?.addEventListener('abort', onAbort, { once: true });
    socket.on('readable', onReadable);
    socket.once('error', onError);
    socket.once('end', onEnd);
    socket.write(connectRequest(where, args.authorization));
  });
}

function connectRequest(where: string, authorization: string | undefined): string {
  const lines = [`CONNECT ${where} HTTP/1.1`, `Host: ${where}`];
  if (authorization) lines.push(`Proxy-Authorization: ${authorization}`);
  return `${lines.join('\r\n')}\r\n\r\n`;
}

function formatHostPort(t: DialTarget): string {
  return t.host.includes(':') ? `[${t.host}]:${t.port}` : `${t.host}:${t.port}`;
}

function parseProxyUrl(proxyUrl: string | URL): URL {
  let url: URL;
  try {
    url = new URL(proxyUrl);
  } catch (err) {
    throw new RelayError('ERR_CONFIG_INVALID', 'egress proxy is not a valid URL', { cause: err });
  }
  if (url.protocol !== 'http:' || url.hostname === '') {
    // The URL may carry credentials: name only the parts that cannot be secret.
    throw new RelayError(
      'ERR_CONFIG_INVALID',
      `egress proxy must be http://host:port, got protocol ${url.protocol}`,
      { details: { protocol: url.protocol } },
    );
  }
  return url;
}
