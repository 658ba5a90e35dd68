/**
 * The normal client's "established" mode (slow-clients-normal.ts): ONE keep-alive HTTP/1.1
 * connection to the entry, opened by the first download and reused by every later one, so
 * a download measures the entry's service of a connection it has already accepted (no
 * wait in its accept queue). It never reconnects: once the connection has closed (the
 * entry's 5 s keep-alive idle close, a reset, a `Connection: close`), this and every later
 * download fail with the reason, which the bench reports.
 *
 * Plain `net` instead of an http.Agent: an agent would silently open a new connection when
 * its pooled one has closed. Responses must carry a Content-Length (the entry forwards the
 * origin's); a chunked one is reported as an error.
 */
import net from 'node:net';
import type { DownloadPhases } from './slow-clients-run.ts';

const HEAD_END = Buffer.from('\r\n\r\n');
const HEAD_MAX = 16 * 1024;
const DOWNLOAD_TIMEOUT_MS = 60_000;

export class EstablishedConnection {
  readonly #host: string;
  readonly #port: number;
  #socket: net.Socket | undefined;
  /** Why the connection is gone (then every download fails with it). */
  #closed: string | undefined;
  #onData: ((d: Buffer) => void) | undefined;
  #onClose: ((why: string) => void) | undefined;
  #lastEndedAt = 0;
  /** Downloads completed on the connection. */
  downloads = 0;
  /** Epoch ms when the connection closed (0: open or never opened). */
  closedAt = 0;

  constructor(host: string, port: number) {
    this.#host = host;
    this.#port = port;
  }

  /** Why the connection closed, undefined while it is open (or before the first download). */
  get closed(): string | undefined {
    return this.#closed;
  }

  /** Downloads `/fast?bytes=N` on the connection; resolves with MB/s (10^6 B/s). */
  async download(
    bytes: number,
    onData?: (n: number) => void,
    phases?: (ms: DownloadPhases) => void,
  ): Promise<number> {
    if (this.#closed) throw new Error(this.#closed);
    const started = performance.now();
    const socket = this.#socket ?? (await this.#open());
    const connect = this.downloads === 0 ? performance.now() - started : 0;
    return new Promise<number>((resolve, reject) => {
      let head: Buffer | undefined = Buffer.alloc(0);
      let headMs = Number.NaN;
      let n = 0;
      const finish = (err?: Error) => {
        clearTimeout(timer);
        this.#onData = undefined;
        this.#onClose = undefined;
        if (err) return reject(err);
        const total = performance.now() - started;
        this.downloads++;
        this.#lastEndedAt = Date.now();
        phases?.({ connect, head: headMs, total });
        resolve(bytes / 1e3 / total);
      };
      const timer = setTimeout(() => {
        finish(new Error(`established download ${this.downloads + 1} timed out`));
        this.#close(`closed by the client: download ${this.downloads + 1} timed out`);
        socket.destroy();
      }, DOWNLOAD_TIMEOUT_MS);
      this.#onClose = (why) =>
        finish(new Error(`${why}, during download ${this.downloads + 1} (${n} of ${bytes} B)`));
      const body = (d: Buffer) => {
        n += d.length;
        onData?.(d.length);
        if (n > bytes) finish(new Error(`established download: ${n} B, more than ${bytes}`));
        else if (n === bytes) finish();
      };
      this.#onData = (d) => {
        if (!head) return body(d);
        head = Buffer.concat([head, d]);
        const end = head.indexOf(HEAD_END);
        if (end < 0) {
          if (head.length > HEAD_MAX) finish(new Error('established download: head too long'));
          return;
        }
        headMs = performance.now() - started;
        const text = head.toString('latin1', 0, end);
        const rest = head.subarray(end + HEAD_END.length);
        head = undefined;
        const status = Number(text.slice(9, 12));
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(text)?.[1] ?? Number.NaN);
        if (status !== 200 || length !== bytes) {
          return finish(
            new Error(`established download: status ${status}, content-length ${length}`),
          );
        }
        if (rest.length > 0) body(rest);
      };
      socket.write(`GET /fast?bytes=${bytes} HTTP/1.1\r\nHost: fast.local\r\n\r\n`);
    });
  }

  /** Closes the connection (idempotent); later downloads fail. */
  destroy(): void {
    this.#close('closed by the client');
    this.#socket?.destroy();
  }

  #open(): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: this.#host, port: this.#port, noDelay: true });
      socket.once('connect', () => {
        this.#socket = socket;
        resolve(socket);
      });
      socket.on('data', (d: Buffer) => {
        if (this.#onData) this.#onData(d);
        else this.#close(`the entry sent ${d.length} B between downloads`, socket);
      });
      socket.on('error', (err) => this.#close(`connection error: ${err.message}`));
      socket.once('close', () => {
        const idle = this.#lastEndedAt > 0 ? Date.now() - this.#lastEndedAt : 0;
        this.#close(
          this.#onData
            ? 'established connection closed by the entry'
            : `established connection closed by the entry ${idle} ms after download ${this.downloads} ended`,
        );
        reject(new Error(this.#closed));
      });
    });
  }

  /** Records the first reason the connection ended and fails the download in progress. */
  #close(why: string, socket?: net.Socket): void {
    if (this.#closed) return;
    this.#closed = why;
    this.closedAt = Date.now();
    const onClose = this.#onClose;
    this.#onClose = undefined;
    onClose?.(why);
    socket?.destroy();
  }
}
