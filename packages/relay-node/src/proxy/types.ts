import type { Duplex } from 'node:stream';
import type { WireCode } from '@relaymesh/shared';

/**
 * A byte stream to a peer node: in production a mux `MuxStream` (a Duplex with half-close
 * via `end()` and `reset(code)`); in unit tests any Duplex. The data plane only needs this.
 */
export interface HopStream extends Duplex {
  /** Abort the stream at once, telling the peer why (RST with a wire code). */
  reset?(code: WireCode): void;
  /** The wire code of the RST that ended the stream, set when the peer reset it. */
  readonly resetCode?: WireCode | undefined;
}

/** Opens new streams to directly connected peers (the node's sessions). */
export interface StreamOpener {
  /**
   * Opens a stream to `peerNodeId`. Throws (a RelayError, e.g. ERR_MUX_SESSION_CLOSED) when
   * there is no usable session to that peer, so the caller can fail over at once.
   */
  open(peerNodeId: string): HopStream;
}

/** Routes for new streams, as computed by the coordinator for this entry node. */
export interface RouteSource {
  /** Paths to the exit for `origin`, best first, each `[entry, ..., exit]`; [] if none. */
  pathsFor(origin: string): string[][];
  /** Local failover hint: no stream could be opened to this first hop just now. */
  markPeerDown?(peerNodeId: string): void;
}

/** One origin server endpoint, parsed from `http://h:p` or `tcp://h:p`. */
export interface UpstreamAddress {
  scheme: 'http' | 'tcp';
  host: string;
  port: number;
  /** The declared form, for logs: `http://10.0.0.5:8080`. */
  url: string;
}

/** Active health check settings of an origin. */
export interface HealthCheckConfig {
  /** HTTP path to GET (http upstreams); tcp upstreams are checked by connecting. @default '/' */
  path: string;
  /** @default 5000 */
  intervalMs: number;
  /** @default 2000 */
  timeoutMs: number;
}

/** A declared origin (cluster-wide config). */
export interface Origin {
  name: string;
  /** Host names clients use (lowercase, no port). */
  hosts: string[];
  upstreams: UpstreamAddress[];
  healthCheck?: HealthCheckConfig | undefined;
}

/** Looks up declared origins. Anything not found here is never reachable (no open proxy). */
export interface OriginCatalog {
  /** By client-facing host name (any case, port already removed). */
  byHost(host: string): Origin | undefined;
  byName(name: string): Origin | undefined;
}
