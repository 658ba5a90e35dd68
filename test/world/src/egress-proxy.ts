import { once } from 'node:events';
import net from 'node:net';
import { type Logger, RelayError, silentLogger } from '@relaymesh/shared';
import { type ControlServer, startControlServer } from './control-api.ts';
import { LinkDirection, type LinkDirectionStats } from './link/link-direction.ts';
import type { LinkProfile } from './link/profile.ts';
import { DelayScheduler } from './link/scheduler.ts';
import { SplicedConnection } from './link/spliced-connection.ts';

/** Names of the loopback host that resolve to the 127.0.0.1 entries of the table. */
const LOOPBACK_NAMES = new Set(['localhost', '::1']);
/** Size cap of a CONNECT request head. */
const MAX_HEAD_BYTES = 8 * 1024;
/** A client that does not finish its CONNECT head in this time is dropped. */
const HEAD_TIMEOUT_MS = 10_000;
/** Connection set-up to the destination gives up after this long (504). */
const UPSTREAM_CONNECT_TIMEOUT_MS = 10_000;

/** One direction of a link in the proxy's configuration. */
export interface LinkSpec extends LinkProfile {
  from: string;
  to: string;
}

/** A listening address in the world and the region it sits in. */
export interface Endpoint {
  host: string;
  port: number;
  region: string;
}

/** A fault switched at run time on the link between two regions (both directions). */
export type LinkFault =
  | { fault: 'blackhole' }
  | { fault: 'reset' }
  | { fault: 'heal' }
  | { fault: 'degrade'; rttMs?: number; bandwidthBps?: number };

export interface EgressProxyOptions {
  /** Regions this process serves; each gets its own CONNECT listener. */
  regions: string[];
  /** Link directions; every (region served, destination region) pair needs both directions. */
  links: LinkSpec[];
  /** Destination table: which region every world address belongs to. */
  endpoints?: Endpoint[];
  /** @default '127.0.0.1' */
  host?: string;
  /** Listener port per region. @default 0 (assigned) */
  ports?: Record<string, number>;
  /** Control API port; `null` disables it. @default 0 */
  controlPort?: number | null;
  /** Seeds the jitter streams. @default 1 */
  seed?: number;
  /** @default 4096 */
  maxConnections?: number;
  logger?: Logger;
}

/** What applying a fault touched. */
export interface FaultResult {
  directions: number;
  connections: number;
}

/**
 * The WAN link emulator: an HTTP CONNECT proxy per region. A connection made through region
 * A's listener to an address of region B gets the A→B profile upstream and B→A downstream,
 * shared with every other connection on those directions. Connection set-up costs one RTT
 * before the `200`, like a TCP handshake. Destinations not in the endpoint table get 403:
 * this is not an open proxy.
 */
export class EgressProxy {
  readonly ports: Record<string, number> = {};
  #controlPort = 0;
  readonly #host: string;
  readonly #log: Logger;
  readonly #scheduler = new DelayScheduler();
  readonly #links = new Map<string, LinkDirection>();
  readonly #endpoints = new Map<string, string>();
  readonly #servers = new Map<string, net.Server>();
  readonly #connections = new Set<SplicedConnection>();
  readonly #sockets = new Set<net.Socket>();
  readonly #maxConnections: number;
  #control: ControlServer | undefined;
  #closed = false;

  private constructor(options: EgressProxyOptions) {
    this.#host = options.host ?? '127.0.0.1';
    this.#log = (options.logger ?? silentLogger()).child({ component: 'egress-proxy' });
    this.#maxConnections = options.maxConnections ?? 4096;
    for (const l of options.links) {
      const { from, to, ...profile } = l;
      this.#links.set(
        key(from, to),
        new LinkDirection(from, to, profile, this.#scheduler, options.seed),
      );
    }
    this.setEndpoints(options.endpoints ?? []);
  }

  /**
   * Starts the listeners (and the control API).
   * @throws ERR_WORLD_CONFIG when a served region has no links or a profile is invalid.
   */
  static async start(options: EgressProxyOptions): Promise<EgressProxy> {
    validateOptions(options);
    const proxy = new EgressProxy(options);
    try {
      for (const region of options.regions) {
        await proxy.#listen(region, options.ports?.[region] ?? 0);
      }
      if (options.controlPort !== null) {
        proxy.#control = await startControlServer(proxy, proxy.#host, options.controlPort ?? 0);
        proxy.#controlPort = proxy.#control.port;
      }
    } catch (err) {
      proxy.destroy();
      throw err;
    }
    return proxy;
  }

  get controlPort(): number {
    return this.#controlPort;
  }

  /** `http://host:port` of the region's listener, for `--egress-proxy`. */
  urlFor(region: string): string {
    const port = this.ports[region];
    if (port === undefined)
      throw new RelayError('ERR_WORLD_CONFIG', `egress proxy does not serve region ${region}`);
    return `http://${this.#host}:${port}`;
  }

  /** Adds or replaces destination entries (new processes appear while a world runs). */
  setEndpoints(endpoints: Endpoint[]): void {
    for (const e of endpoints) this.#endpoints.set(`${e.host}:${e.port}`, e.region);
  }

  endpoints(): Endpoint[] {
    return [...this.#endpoints].map(([hp, region]) => {
      const i = hp.lastIndexOf(':');
      return { host: hp.slice(0, i), port: Number(hp.slice(i + 1)), region };
    });
  }

  /** Applies a fault to both directions between `a` and `b` that this proxy carries. */
  applyFault(a: string, b: string, f: LinkFault): FaultResult {
    const dirs = [this.#links.get(key(a, b)), this.#links.get(key(b, a))].filter(
      (d, i, all): d is LinkDirection => d !== undefined && all.indexOf(d) === i,
    );
    let connections = 0;
    for (const d of dirs) {
      if (f.fault === 'blackhole') d.blackhole();
      else if (f.fault === 'heal') d.heal();
      else if (f.fault === 'degrade') {
        const change: Partial<LinkProfile> = {};
        if (f.rttMs !== undefined) change.rttMs = f.rttMs;
        if (f.bandwidthBps !== undefined) change.bandwidthBps = f.bandwidthBps;
        d.degrade(change);
      }
    }
    if (f.fault === 'reset') {
      for (const c of [...this.#connections]) {
        if ((c.from === a && c.to === b) || (c.from === b && c.to === a)) {
          c.reset();
          connections++;
        }
      }
    }
    this.#log.info(
      { a, b, fault: f.fault, directions: dirs.length, connections },
      'link fault applied',
    );
    return { directions: dirs.length, connections };
  }

  linkStats(): LinkDirectionStats[] {
    return [...this.#links.values()].map((d) => d.stats());
  }

  /** Largest lateness of the delay timer so far, ms (emulator accuracy). */
  get maxTimerLateMs(): number {
    return this.#scheduler.lateness.maxMs;
  }

  /** How late delayed work ran (event-loop lag inside the emulator): counts and maximum. */
  timerLateness(): { entries: number; over2Ms: number; over10Ms: number; maxMs: number } {
    return { ...this.#scheduler.lateness };
  }

  /** Stops listening and drops every connection; idempotent. (No graceful drain is useful here.) */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.destroy();
    await Promise.all(
      [...this.#servers.values()].map((s) => (s.listening ? once(s, 'close') : undefined)),
    );
  }

  /** Immediate teardown; idempotent. */
  destroy(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const s of this.#servers.values()) s.close();
    for (const c of [...this.#connections]) c.reset();
    for (const s of this.#sockets) s.destroy();
    this.#control?.destroy();
    this.#scheduler.close();
  }

  async #listen(region: string, port: number): Promise<void> {
    const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) =>
      this.#accept(region, socket),
    );
    this.#servers.set(region, server);
    server.listen(port, this.#host);
    await once(server, 'listening');
    this.ports[region] = (server.address() as net.AddressInfo).port;
  }

  #track(socket: net.Socket): void {
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
    socket.on('error', () => {});
  }

  #accept(region: string, client: net.Socket): void {
    this.#track(client);
    if (this.#closed || this.#sockets.size > 2 * this.#maxConnections) {
      client.end('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    readHead(client, (err, head, rest) => {
      if (err || head === undefined) {
        client.destroy();
        return;
      }
      this.#onConnect(region, client, head, rest ?? Buffer.alloc(0));
    });
  }

  #onConnect(region: string, client: net.Socket, head: string, rest: Buffer): void {
    const m = /^CONNECT (\S+):(\d+) HTTP\/1\.[01]\r\n/.exec(`${head}\r\n`);
    if (!m) {
      reply(client, 405, 'Method Not Allowed', 'only CONNECT is supported');
      return;
    }
    const host = m[1]!.replace(/^\[(.*)\]$/, '$1');
    const port = Number(m[2]);
    const to =
      this.#endpoints.get(`${host}:${port}`) ??
      (LOOPBACK_NAMES.has(host) ? this.#endpoints.get(`127.0.0.1:${port}`) : undefined);
    if (to === undefined) {
      reply(client, 403, 'Forbidden', `${host}:${port} is not an address of this world`);
      return;
    }
    const up = this.#links.get(key(region, to));
    const down = this.#links.get(key(to, region));
    if (!up || !down) {
      this.#log.warn({ from: region, to }, 'no link profile for region pair');
      reply(client, 502, 'Bad Gateway', `no link from ${region} to ${to}`);
      return;
    }
    this.#setUp({ client, host, port, up, down, rest });
  }

  /**
   * Emulates the TCP handshake: the SYN travels one way (then the real connect), the
   * SYN-ACK travels back, and only then does the client get its `200`. A blackholed link
   * holds the set-up until it heals, as lost SYNs would be retransmitted.
   */
  #setUp(args: {
    client: net.Socket;
    host: string;
    port: number;
    up: LinkDirection;
    down: LinkDirection;
    rest: Buffer;
  }): void {
    const { client, up, down } = args;
    const after = (link: LinkDirection, fn: () => void) => {
      const go = () =>
        link.blackholed
          ? link.waitForRoom(go)
          : this.#scheduler.schedule(this.#scheduler.now() + link.oneWayMs, fn);
      go();
    };
    const timer = setTimeout(() => {
      upstream?.destroy();
      reply(client, 504, 'Gateway Timeout', 'connection set-up timed out');
    }, UPSTREAM_CONNECT_TIMEOUT_MS);
    timer.unref();
    let upstream: net.Socket | undefined;
    let spliced = false;
    client.once('close', () => {
      clearTimeout(timer);
      // Before the splice nobody else owns the upstream socket.
      if (!spliced) upstream?.destroy();
    });
    after(up, () => {
      if (client.destroyed) return;
      upstream = net.connect({
        host: args.host,
        port: args.port,
        allowHalfOpen: true,
        noDelay: true,
      });
      this.#track(upstream);
      let connected = false;
      upstream.once('error', (err: NodeJS.ErrnoException) => {
        if (connected) return;
        clearTimeout(timer);
        after(down, () =>
          reply(client, 502, 'Bad Gateway', `connect failed: ${err.code ?? 'error'}`),
        );
      });
      upstream.once('connect', () => {
        connected = true;
        after(down, () => {
          clearTimeout(timer);
          if (client.destroyed || !upstream || upstream.destroyed) return void upstream?.destroy();
          client.write('HTTP/1.1 200 Connection established\r\n\r\n');
          spliced = true;
          this.#splice(client, upstream, up, down, args.rest);
        });
      });
    });
  }

  #splice(
    client: net.Socket,
    upstream: net.Socket,
    up: LinkDirection,
    down: LinkDirection,
    rest: Buffer,
  ): void {
    const conn = new SplicedConnection({
      client,
      upstream,
      up,
      down,
      scheduler: this.#scheduler,
      onClosed: (c) => this.#connections.delete(c),
      logger: this.#log,
    });
    this.#connections.add(conn);
    conn.start(rest);
  }
}

/** Starts an emulator; see {@link EgressProxy}. */
export function startEgressProxy(options: EgressProxyOptions): Promise<EgressProxy> {
  return EgressProxy.start(options);
}

function validateOptions(options: EgressProxyOptions): void {
  for (const region of options.regions) {
    if (!options.links.some((l) => l.from === region)) {
      throw new RelayError('ERR_WORLD_CONFIG', `egress proxy region ${region} has no links`);
    }
  }
  for (const l of options.links) {
    if (!(l.rttMs >= 0) || !(l.bandwidthBps > 0)) {
      throw new RelayError(
        'ERR_WORLD_CONFIG',
        `link ${l.from} -> ${l.to} needs rttMs >= 0 and bandwidthBps > 0 (got ${l.rttMs}, ${l.bandwidthBps})`,
      );
    }
  }
}

function key(from: string, to: string): string {
  return `${from}>${to}`;
}

function reply(socket: net.Socket, status: number, reason: string, body: string): void {
  if (socket.destroyed) return;
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/** Reads a request head (up to 8 KiB) without consuming bytes that follow it. */
function readHead(
  socket: net.Socket,
  done: (err: Error | undefined, head?: string, rest?: Buffer) => void,
): void {
  let buf = Buffer.alloc(0);
  const timer = setTimeout(() => finish(new Error('head timeout')), HEAD_TIMEOUT_MS);
  timer.unref();
  const finish = (err: Error | undefined, head?: string, rest?: Buffer) => {
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('end', onEnd);
    socket.pause();
    done(err, head, rest);
  };
  const onEnd = () => finish(new Error('closed before head'));
  const onData = (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    const end = buf.indexOf('\r\n\r\n');
    if (end !== -1)
      return finish(undefined, buf.subarray(0, end).toString('latin1'), buf.subarray(end + 4));
    if (buf.length > MAX_HEAD_BYTES) finish(new Error('head too large'));
  };
  socket.on('data', onData);
  socket.once('end', onEnd);
}
