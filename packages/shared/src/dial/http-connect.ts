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
  return new Promise((resolve, reject) =>
    new ConnectExchange(socket, args, resolve, reject).start(),
  );
}

/**
 * One CONNECT request/response on a fresh proxy socket. Reads with 'readable' + read(), not
 * 'data': that never switches the socket to flowing mode, so no tunnel byte can be emitted
 * before the caller attaches its own listeners.
 */
class ConnectExchange {
  readonly #socket: net.Socket;
  readonly #args: HandshakeArgs;
  readonly #where: string;
  readonly #resolve: (socket: net.Socket) => void;
  readonly #reject: (err: RelayError) => void;
  #head = Buffer.alloc(0);
  #timer: NodeJS.Timeout | undefined;

  constructor(
    socket: net.Socket,
    args: HandshakeArgs,
    resolve: (socket: net.Socket) => void,
    reject: (err: RelayError) => void,
  ) {
    this.#socket = socket;
    this.#args = args;
    this.#where = formatHostPort(args.target);
    this.#resolve = resolve;
    this.#reject = reject;
  }

  start(): void {
    const { signal } = this.#args;
    if (signal?.aborted) {
      this.#onAbort();
      return;
    }
    signal?.addEventListener('abort', this.#onAbort, { once: true });
    this.#timer = setTimeout(this.#onTimeout, this.#args.timeoutMs);
    this.#socket.on('readable', this.#onReadable);
    this.#socket.once('error', this.#onError);
    this.#socket.once('end', this.#onEnd);
    this.#socket.write(connectRequest(this.#where, this.#args.authorization));
  }

  readonly #onReadable = (): void => {
    for (let chunk = this.#socket.read() as Buffer | null; chunk; chunk = this.#socket.read()) {
      this.#head = Buffer.concat([this.#head, chunk]);
      const end = this.#head.indexOf(HEAD_END);
      if (end !== -1) {
        this.#settle(this.#head.subarray(0, end), this.#head.subarray(end + HEAD_END.length));
        return;
      }
      if (this.#head.length > MAX_CONNECT_RESPONSE_HEAD_BYTES) {
        const limit = MAX_CONNECT_RESPONSE_HEAD_BYTES;
        this.#fail(this.#protocolError(`sent a response head over ${limit} bytes`));
        return;
      }
    }
  };

  #settle(headBytes: Buffer, rest: Buffer): void {
    const statusLine = headBytes.toString('latin1').split('\r\n', 1)[0] ?? '';
    const m = STATUS_LINE.exec(statusLine);
    if (!m) {
      const shown = JSON.stringify(statusLine.slice(0, 80));
      this.#fail(this.#protocolError(`sent a non-HTTP reply: ${shown}`));
      return;
    }
    const status = Number(m[1]);
    if (status < 200 || status > 299) {
      const reason = m[2] ?? '';
      const message = `egress proxy ${this.#args.proxy} refused CONNECT ${this.#where}: ${status} ${reason}`;
      this.#fail(
        new RelayError('ERR_DIAL_PROXY_REJECTED', message.trimEnd(), {
          details: { proxy: this.#args.proxy, target: this.#where, status, reason },
        }),
      );
      return;
    }
    this.#cleanup();
    // Bytes the far end sent right after the head belong to the tunnel, not to us.
    if (rest.length > 0) this.#socket.unshift(rest);
    this.#socket.setNoDelay(true);
    this.#resolve(this.#socket);
  }

  readonly #onTimeout = (): void => {
    const { proxy, totalTimeoutMs } = this.#args;
    this.#fail(
      new RelayError(
        'ERR_DIAL_TIMEOUT',
        `connect to ${this.#where} via ${proxy} timed out after ${totalTimeoutMs} ms`,
        { details: { proxy, target: this.#where } },
      ),
    );
  };

  readonly #onAbort = (): void => {
    this.#fail(
      new RelayError(
        'ERR_DIAL_REFUSED',
        `connect to ${this.#where} via ${this.#args.proxy} aborted`,
        {
          cause: this.#args.signal?.reason,
        },
      ),
    );
  };

  readonly #onError = (err: Error): void => {
    const why = (err as NodeJS.ErrnoException).code ?? err.message;
    this.#fail(
      new RelayError(
        'ERR_DIAL_REFUSED',
        `connect to ${this.#where} via ${this.#args.proxy} failed: ${why}`,
        {
          cause: err,
        },
      ),
    );
  };

  readonly #onEnd = (): void => {
    this.#fail(this.#protocolError('closed the connection before answering CONNECT'));
  };

  #protocolError(what: string): RelayError {
    return new RelayError('ERR_DIAL_PROXY_PROTOCOL', `egress proxy ${this.#args.proxy} ${what}`, {
      details: { proxy: this.#args.proxy, target: this.#where },
    });
  }

  #fail(err: RelayError): void {
    this.#cleanup();
    this.#socket.destroy();
    this.#reject(err);
  }

  #cleanup(): void {
    clearTimeout(this.#timer);
    this.#socket.off('readable', this.#onReadable);
    this.#socket.off('error', this.#onError);
    this.#socket.off('end', this.#onEnd);
    this.#args.signal?.removeEventListener('abort', this.#onAbort);
  }
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
