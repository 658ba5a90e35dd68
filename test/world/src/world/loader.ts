import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RelayError } from '@relaymesh/shared';
import { parse } from 'yaml';
import { type JitterModel, jitterPreset, mathisBandwidthBps } from '../link/profile.ts';
import { type LatencyMatrix, loadLatencyMatrix } from './matrix.ts';
import type {
  LinkSource,
  OriginKind,
  ResolvedLink,
  World,
  WorldClient,
  WorldNode,
  WorldOrigin,
  WorldRegion,
} from './types.ts';

/** The package's worlds/ folder. */
export const WORLDS_DIR = fileURLToPath(new URL('../../worlds/', import.meta.url));

/**
 * Defaults for links a world file does not override (docs/world.md explains the choice):
 * cloud backbone 100 Mbit/s per direction (the seed's mesh path must reach 0.9 of it, and
 * 2 cores can pace it), intra-region 2 ms / 1 Gbit/s, `cloud` jitter.
 */
export const WORLD_DEFAULTS = {
  backboneBandwidthMbps: 100,
  intraRegionRttMs: 2,
  intraRegionBandwidthMbps: 1000,
  jitter: 'cloud',
  fileSizeBytes: 32 * 1024 * 1024,
} as const;

type JitterSpec = 'none' | 'cloud' | 'lossy' | JitterModel;

interface LinkOverride {
  from: string;
  to: string;
  oneWay: boolean;
  rttMs: number | undefined;
  bandwidthMbps: number | undefined;
  lossPct: number | undefined;
  jitter: JitterSpec | undefined;
}

export interface LoadWorldOptions {
  /** @default the package's data/latency-matrix.csv */
  matrixPath?: string;
}

/**
 * Loads a world file (YAML or JSON) by name (`seed` → worlds/seed.yaml) or path, and
 * resolves its full link table: every ordered region pair, from the overrides first, then
 * the latency matrix (A→B as written; the reverse row when only that exists, as for cn-*),
 * then the intra-region default for a region to itself.
 *
 * @throws ERR_WORLD_CONFIG naming the field, region or pair that is wrong or missing.
 */
export function loadWorld(nameOrPath: string, options: LoadWorldOptions = {}): World {
  const file = resolveWorldFile(nameOrPath);
  let doc: unknown;
  try {
    doc = parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new RelayError('ERR_WORLD_CONFIG', `cannot read world file ${file}`, { cause: err });
  }
  return resolveWorld(doc, file, loadLatencyMatrix(options.matrixPath));
}

function resolveWorldFile(nameOrPath: string): string {
  const isPath = /[/\\]|\.(ya?ml|json)$/.test(nameOrPath);
  const file = isPath ? path.resolve(nameOrPath) : path.join(WORLDS_DIR, `${nameOrPath}.yaml`);
  if (!existsSync(file))
    throw new RelayError('ERR_WORLD_CONFIG', `no world file ${file} (for ${nameOrPath})`);
  return file;
}

/** Builds a World from a parsed document; exported for tests and generated worlds. */
export function resolveWorld(doc: unknown, file: string, matrix: LatencyMatrix): World {
  const root = obj(doc, 'world');
  const seed = optNum(root, 'seed', 'world') ?? 1;
  const regions = list(root, 'regions').map((r, i): WorldRegion => {
    const o = obj(r, `regions[${i}]`);
    const id = str(o, 'id', `regions[${i}]`);
    return { id, matrix: optStr(o, 'matrix', id) ?? id, description: optStr(o, 'description', id) };
  });
  const ids = new Set(regions.map((r) => r.id));
  if (ids.size !== regions.length) fail('region ids must be unique');
  if (ids.size === 0) fail('a world needs at least one region');
  const inRegion = (where: string, o: Record<string, unknown>) => {
    const region = str(o, 'region', where);
    if (!ids.has(region)) fail(`${where}: unknown region ${region}`);
    return region;
  };
  const nodes = list(root, 'nodes').map((n, i): WorldNode => {
    const o = obj(n, `nodes[${i}]`);
    return { id: str(o, 'id', `nodes[${i}]`), region: inRegion(`nodes[${i}]`, o) };
  });
  const origins = list(root, 'origins').map((x, i) => origin(x, i, seed, inRegion));
  const clients = list(root, 'clients').map((c, i): WorldClient => {
    const o = obj(c, `clients[${i}]`);
    return { id: str(o, 'id', `clients[${i}]`), region: inRegion(`clients[${i}]`, o) };
  });
  const overrides = list(root, 'links').map((l, i) => linkOverride(l, i, ids));
  const links: ResolvedLink[] = [];
  for (const a of regions)
    for (const b of regions) links.push(resolveLink(a, b, overrides, matrix));
  return {
    name: optStr(root, 'name', 'world') ?? path.basename(file).replace(/\.[^.]+$/, ''),
    description: optStr(root, 'description', 'world') ?? '',
    seed,
    file,
    regions,
    nodes,
    origins,
    clients,
    links,
  };
}

function origin(
  x: unknown,
  i: number,
  seed: number,
  inRegion: (where: string, o: Record<string, unknown>) => string,
): WorldOrigin {
  const where = `origins[${i}]`;
  const o = obj(x, where);
  const kind = str(o, 'kind', where) as OriginKind;
  if (!['file', 'http', 'tcp'].includes(kind)) fail(`${where}: kind must be file, http or tcp`);
  const hosts = o.hosts === undefined ? [] : (o.hosts as unknown[]);
  if (!Array.isArray(hosts) || !hosts.every((h) => typeof h === 'string'))
    fail(`${where}: hosts must be a list of names`);
  return {
    name: str(o, 'name', where),
    region: inRegion(where, o),
    kind,
    hosts: hosts as string[],
    sizeBytes: optNum(o, 'sizeBytes', where) ?? WORLD_DEFAULTS.fileSizeBytes,
    contentSeed: optNum(o, 'contentSeed', where) ?? seed + i,
  };
}

function linkOverride(l: unknown, i: number, ids: Set<string>): LinkOverride {
  const where = `links[${i}]`;
  const o = obj(l, where);
  const from = str(o, 'from', where);
  const to = str(o, 'to', where);
  for (const r of [from, to]) if (!ids.has(r)) fail(`${where}: unknown region ${r}`);
  const jitter = o.jitter as JitterSpec | undefined;
  if (
    jitter !== undefined &&
    typeof jitter === 'string' &&
    !['none', 'cloud', 'lossy'].includes(jitter)
  )
    fail(`${where}: jitter must be none, cloud, lossy or { kind: lognormal, medianMs, sigma }`);
  return {
    from,
    to,
    oneWay: o.oneWay === true,
    rttMs: optNum(o, 'rttMs', where),
    bandwidthMbps: optNum(o, 'bandwidthMbps', where),
    lossPct: optNum(o, 'lossPct', where),
    jitter,
  };
}

function resolveLink(
  a: WorldRegion,
  b: WorldRegion,
  overrides: LinkOverride[],
  matrix: LatencyMatrix,
): ResolvedLink {
  const ov =
    overrides.find((o) => o.from === a.id && o.to === b.id) ??
    overrides.find((o) => !o.oneWay && o.from === b.id && o.to === a.id);
  let source: LinkSource = 'override';
  let rttMs = ov?.rttMs;
  if (rttMs === undefined && a.matrix && b.matrix) {
    rttMs = matrix.get(a.matrix, b.matrix);
    source = 'matrix';
    if (rttMs === undefined && a.id !== b.id) {
      rttMs = matrix.get(b.matrix, a.matrix);
      source = 'matrix-reverse';
    }
  }
  if (rttMs === undefined && a.id === b.id) {
    rttMs = WORLD_DEFAULTS.intraRegionRttMs;
    source = 'intra-default';
  }
  if (rttMs === undefined) {
    const missing = [a, b].filter((r) => !r.matrix || !matrix.regions().includes(r.matrix));
    fail(
      `no RTT for ${a.id} -> ${b.id}: ${missing.map((r) => r.id).join(' and ') || 'the pair'} not in latency-matrix.csv; add a links entry for this pair`,
    );
  }
  const lossPct = ov?.lossPct ?? 0;
  const mbps =
    ov?.bandwidthMbps ??
    (a.id === b.id
      ? WORLD_DEFAULTS.intraRegionBandwidthMbps
      : WORLD_DEFAULTS.backboneBandwidthMbps);
  if (mbps <= 0) fail(`link ${a.id} -> ${b.id}: bandwidthMbps must be above 0`);
  if (lossPct >= 100) fail(`link ${a.id} -> ${b.id}: lossPct must be below 100`);
  const bandwidthBps = Math.round(Math.min(mbps * 1e6, mathisBandwidthBps(rttMs, lossPct)));
  const jitterSpec: JitterSpec = ov?.jitter ?? (lossPct > 1 ? 'lossy' : WORLD_DEFAULTS.jitter);
  const jitter = typeof jitterSpec === 'string' ? jitterPreset(jitterSpec, rttMs) : jitterSpec;
  return { from: a.id, to: b.id, rttMs, bandwidthBps, jitter, lossPct, source };
}

/** The link from `from` to `to`. @throws ERR_WORLD_CONFIG for an unknown pair. */
export function linkBetween(world: World, from: string, to: string): ResolvedLink {
  const link = world.links.find((l) => l.from === from && l.to === to);
  if (!link) fail(`world ${world.name} has no link ${from} -> ${to}`);
  return link;
}

function fail(message: string): never {
  throw new RelayError('ERR_WORLD_CONFIG', message);
}

function obj(x: unknown, where: string): Record<string, unknown> {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) fail(`${where} must be an object`);
  return x as Record<string, unknown>;
}

function list(o: Record<string, unknown>, field: string): unknown[] {
  const v = o[field];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) fail(`${field} must be a list`);
  return v;
}

function str(o: Record<string, unknown>, field: string, where: string): string {
  const v = o[field];
  if (typeof v !== 'string' || v === '') fail(`${where}: ${field} must be a non-empty string`);
  return v;
}

function optStr(o: Record<string, unknown>, field: string, where: string): string | undefined {
  return o[field] === undefined ? undefined : str(o, field, where);
}

function optNum(o: Record<string, unknown>, field: string, where: string): number | undefined {
  const v = o[field];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0)
    fail(`${where}: ${field} must be a non-negative number`);
  return v;
}
