import type { LinkSpec } from '../egress-proxy.ts';

/** A region of the world; `matrix` is its code in latency-matrix.csv, if it has one. */
export interface WorldRegion {
  id: string;
  matrix: string | undefined;
  description: string | undefined;
}

export interface WorldNode {
  id: string;
  region: string;
}

export type OriginKind = 'file' | 'http' | 'tcp';

/** An origin server: `file` serves a generated file with Range; `http` and `tcp` echo. */
export interface WorldOrigin {
  name: string;
  region: string;
  kind: OriginKind;
  /** Host names clients use for it (declared to the coordinator later). */
  hosts: string[];
  /** `file` only: size in bytes of the generated file. */
  sizeBytes: number;
  /** `file` only: PRNG seed of the content (so its sha256 is known without storing it). */
  contentSeed: number;
}

export interface WorldClient {
  id: string;
  region: string;
}

/** Where a link's numbers came from. */
export type LinkSource = 'override' | 'matrix' | 'matrix-reverse' | 'intra-default';

/** One direction of a link, fully resolved. */
export interface ResolvedLink extends LinkSpec {
  /** Modelled loss (already folded into `bandwidthBps` through the Mathis formula). */
  lossPct: number;
  source: LinkSource;
}

/** A loaded world: every ordered region pair (including a region to itself) has a link. */
export interface World {
  name: string;
  description: string;
  /** Seeds jitter streams and file contents. */
  seed: number;
  /** The file it was loaded from. */
  file: string;
  regions: WorldRegion[];
  nodes: WorldNode[];
  origins: WorldOrigin[];
  clients: WorldClient[];
  links: ResolvedLink[];
}
