import { type ChildProcess, fork } from 'node:child_process';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from '@relaymesh/shared';
import { withMallocTuning } from '../../node/malloc-tuning.ts';
import { childScript } from '../child-script.ts';
import type { FromAcceptor, ToAcceptor } from './acceptor-protocol.ts';

export interface AcceptorOptions {
  host: string;
  port: number;
  backlog: number;
  /** Most connections waiting in the acceptor; more are accepted and closed. */
  maxWaiting: number;
  /** The acceptor's nice value (0: the entry's priority). */
  nice: number;
  /** An address opening this many connections within a second is reported (onConnects); 0: never. */
  floodConnects?: number;
  log: Logger;
  /** A connection handed over (the gate let it in), with the acceptor's counters. */
  onSocket(
    socket: Socket,
    e: { waitedMs: number; credited: boolean; waiting: number; accepted: number },
  ): void;
  /** A connection for the slow lane: its raw TCP handle, unread (see lane()). */
  onLaneHandle?(handle: unknown): void;
  /**
   * Connections waiting in the acceptor now; `top`: the address with the most of them (in
   * the periodic reports).
   */
  onWaiting(n: number, accepted: number, top?: { source: string; n: number }): void;
  /** `source` opened `n` (`floodConnects`) connections within a second, once a second. */
  onConnects?(source: string, n: number): void;
  /** The acceptor process was replaced (it died): what waited there is gone. */
  onRestart(): void;
}

/** Time to wait before starting a new acceptor after one died, doubling to 5 s. */
const RESTART_MS = 100;
const RESTART_MAX_MS = 5_000;
/** close(): the acceptor gets this long to exit before SIGKILL. */
const CLOSE_MS = 2_000;

/**
 * The entry's acceptor process (acceptor-child.ts explains why): starts it, passes the
 * admission gate's decisions to it, and receives the connections it hands over. If it
 * dies, a new one listens on the same address (the connections waiting in it are lost, and
 * connects are refused until it listens; both logged).
 */
export class AcceptorProcess {
  readonly #o: AcceptorOptions;
  #child: ChildProcess | undefined;
  #address: AddressInfo | undefined;
  #open = true;
  #closed = false;
  #restartMs = RESTART_MS;
  #restartTimer: NodeJS.Timeout | undefined;
  /** Sources sent to the slow lane: a replacement acceptor hears them again. */
  readonly #laneSources = new Set<string>();

  constructor(o: AcceptorOptions) {
    this.#o = o;
  }

  /** The acceptor's pid (undefined between a death and its replacement). */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Starts the acceptor; resolves once it listens (port 0 picks one), rejects like listen(). */
  start(): Promise<AddressInfo> {
    return this.#spawn(this.#o.port).then((a) => {
      this.#address = a;
      return a;
    });
  }

  setOpen(open: boolean): void {
    this.#open = open;
    this.#send({ t: 'open', open });
  }

  credit(n: number): void {
    this.#send({ t: 'credit', n });
  }

  /** New connections from `source` go to the slow lane (`on`), or to the entry again. */
  lane(source: string, on: boolean): void {
    if (on) this.#laneSources.add(source);
    else this.#laneSources.delete(source);
    this.#send({ t: 'lane', source, on });
  }

  /** Stops listening and closes what waits there; resolves once the process is gone. */
  close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#restartTimer);
    const child = this.#child;
    this.#child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      const kill = setTimeout(() => child.kill('SIGKILL'), CLOSE_MS);
      child.once('exit', () => {
        clearTimeout(kill);
        resolve();
      });
      if (child.connected) child.send({ t: 'close' } satisfies ToAcceptor);
      else child.kill('SIGKILL');
    });
  }

  #send(m: ToAcceptor): void {
    const child = this.#child;
    // Between a death and the replacement: the new one starts open, told below.
    if (child?.connected) child.send(m);
  }

  #spawn(port: number): Promise<AddressInfo> {
    const { path, execArgv } = childScript('acceptor-child', import.meta.url);
    const child = fork(path, [], {
      execArgv,
      env: withMallocTuning(),
      serialization: 'json',
      // stdout is the node's ready line alone; a crash's trace still reaches stderr.
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    this.#child = child;
    return new Promise((resolve, reject) => {
      let listening = false;
      child.on('message', (m: FromAcceptor, handle?: unknown) => {
        switch (m.t) {
          case 'listening':
            listening = true;
            if (!this.#open) child.send({ t: 'open', open: false } satisfies ToAcceptor);
            for (const source of this.#laneSources)
              child.send({ t: 'lane', source, on: true } satisfies ToAcceptor);
            resolve({ address: m.address, family: m.family, port: m.port });
            break;
          case 'error': {
            const err = new Error(`acceptor: listen ${this.#o.host}:${port}: ${m.message}`);
            (err as NodeJS.ErrnoException).code = m.code;
            child.kill('SIGKILL');
            reject(err);
            break;
          }
          case 'acceptError':
            this.#o.log.warn({ code: m.code, reason: m.message }, 'acceptor: accept failed');
            break;
          case 'socket':
            if (handle) this.#o.onSocket(handle as Socket, m);
            break;
          case 'waiting':
            this.#o.onWaiting(m.n, m.accepted, m.top);
            break;
          case 'connects':
            this.#o.onConnects?.(m.source, m.n);
            break;
          case 'lane':
            if (handle) this.#o.onLaneHandle?.(handle);
            break;
        }
      });
      child.on('error', (err) => {
        if (!listening) reject(err);
        else this.#o.log.error({ err }, 'acceptor process failed');
      });
      child.once('exit', (code, signal) => {
        if (!listening) {
          reject(new Error(`acceptor exited before listening (code ${code}, signal ${signal})`));
          return;
        }
        if (this.#closed || this.#child !== child) return;
        this.#child = undefined;
        this.#o.log.error(
          { code, signal, restartInMs: this.#restartMs },
          'acceptor process died: new client connections are refused until it is replaced',
        );
        this.#o.onRestart();
        this.#restart();
      });
      child.send({
        t: 'listen',
        host: this.#o.host,
        port,
        backlog: this.#o.backlog,
        maxWaiting: this.#o.maxWaiting,
        nice: this.#o.nice,
        floodConnects: this.#o.floodConnects ?? 0,
      } satisfies ToAcceptor);
    });
  }

  #restart(): void {
    this.#restartTimer = setTimeout(() => {
      if (this.#closed) return;
      const port = this.#address?.port ?? this.#o.port;
      this.#spawn(port).then(
        () => {
          this.#restartMs = RESTART_MS;
          this.#o.log.info({ port }, 'acceptor process replaced');
        },
        (err) => {
          this.#o.log.error({ err, retryInMs: this.#restartMs }, 'acceptor process restart failed');
          this.#restart();
        },
      );
      this.#restartMs = Math.min(RESTART_MAX_MS, this.#restartMs * 2);
    }, this.#restartMs);
  }
}
