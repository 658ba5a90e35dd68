import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { RelayError } from '../errors/base.ts';

/** Active health check of an origin's upstreams, run by the exit nodes. */
export interface HealthCheckConfig {
  /** HTTP path requested on http:// upstreams. */
  path: string;
  intervalMs: number;
  timeoutMs: number;
}

/** One upstream server of an origin, parsed from its URL. */
export interface UpstreamTarget {
  /** The URL as written in the config, e.g. `http://127.0.0.1:9000`. */
  url: string;
  scheme: 'http' | 'tcp';
  host: string;
  port: number;
}

/** A declared origin: the only destinations a node relays to. */
export interface OriginConfig {
  name: string;
  /** Host names clients use to reach the origin through an entry node. */
  hosts: string[];
  upstreams: UpstreamTarget[];
  healthCheck?: HealthCheckConfig;
}

/** The coordinator's cluster configuration after validation. */
export interface ClusterConfig {
  /** The cluster token (read from `tokenFile` when that is given). */
  token: string;
  origins: OriginConfig[];
}

const TOP_LEVEL_KEYS = new Set(['token', 'tokenFile', 'origins']);
const ORIGIN_KEYS = new Set(['name', 'hosts', 'upstreams', 'healthCheck']);
const HEALTH_KEYS = new Set(['path', 'intervalMs', 'timeoutMs']);
const NAME_RE = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const HOST_RE =
  /^(?=.{1,253}$)[a-z0-9*]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;
/** Shortest token accepted: shorter ones are guessable. */
export const MIN_TOKEN_LENGTH = 16;

function invalid(field: string, problem: string): RelayError {
  return new RelayError('ERR_CONFIG_INVALID', `${field}: ${problem}`, { details: { field } });
}

function show(value: unknown): string {
  return JSON.stringify(value) ?? String(value);
}

/**
 * Parses an upstream URL: `http://HOST[:PORT]` (port 80 by default) or `tcp://HOST:PORT`.
 * Throws ERR_CONFIG_INVALID naming `field`.
 */
export function parseUpstream(value: unknown, field = 'upstream'): UpstreamTarget {
  if (typeof value !== 'string') throw invalid(field, `${show(value)} is not a string`);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw invalid(field, `${show(value)} is not an http:// or tcp:// URL`);
  }
  const scheme = url.protocol === 'http:' ? 'http' : url.protocol === 'tcp:' ? 'tcp' : undefined;
  if (scheme === undefined || url.hostname === '') {
    throw invalid(field, `${show(value)} is not an http:// or tcp:// URL`);
  }
  if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') {
    throw invalid(field, `${show(value)} must not carry credentials, a query or a fragment`);
  }
  if (url.pathname !== '' && url.pathname !== '/') {
    throw invalid(field, `${show(value)} must not carry a path`);
  }
  const port = url.port === '' ? (scheme === 'http' ? 80 : undefined) : Number(url.port);
  if (port === undefined) throw invalid(field, `${show(value)} needs a port (tcp://HOST:PORT)`);
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  return { url: value, scheme, host, port };
}

function checkKeys(obj: Record<string, unknown>, allowed: Set<string>, field: string): void {
  for (const key of Object.keys(obj)) {
    if (!allowed.has(key)) {
      throw invalid(field === '' ? key : `${field}.${key}`, 'unknown field');
    }
  }
}

function asObject(value: unknown, field: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalid(field, `expected a mapping, got ${show(value)}`);
  }
  return value as Record<string, unknown>;
}

function positiveInt(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
    throw invalid(field, `${show(value)} is not a positive integer`);
  }
  return value;
}

function parseHealthCheck(value: unknown, field: string): HealthCheckConfig {
  const obj = asObject(value, field);
  checkKeys(obj, HEALTH_KEYS, field);
  const p = obj.path ?? '/';
  if (typeof p !== 'string' || !p.startsWith('/')) {
    throw invalid(`${field}.path`, `${show(p)} must start with "/"`);
  }
  const intervalMs = positiveInt(obj.intervalMs ?? 5000, `${field}.intervalMs`);
  const timeoutMs = positiveInt(obj.timeoutMs ?? 2000, `${field}.timeoutMs`);
  if (timeoutMs > intervalMs) {
    throw invalid(`${field}.timeoutMs`, `${timeoutMs} exceeds intervalMs ${intervalMs}`);
  }
  return { path: p, intervalMs, timeoutMs };
}

function parseHosts(value: unknown, field: string, seen: Map<string, string>, name: string) {
  if (!Array.isArray(value) || value.length === 0) {
    throw invalid(field, 'expected a non-empty list of host names');
  }
  return value.map((h, j) => {
    const f = `${field}[${j}]`;
    if (typeof h !== 'string' || !HOST_RE.test(h.toLowerCase())) {
      throw invalid(f, `${show(h)} is not a host name`);
    }
    const host = h.toLowerCase();
    const owner = seen.get(host);
    if (owner !== undefined) throw invalid(f, `${show(h)} is already used by origin "${owner}"`);
    seen.set(host, name);
    return host;
  });
}

function parseOrigin(value: unknown, i: number, names: Set<string>, hosts: Map<string, string>) {
  const field = `origins[${i}]`;
  const obj = asObject(value, field);
  checkKeys(obj, ORIGIN_KEYS, field);
  const name = obj.name;
  if (typeof name !== 'string' || !NAME_RE.test(name)) {
    throw invalid(`${field}.name`, `${show(name)} is not a valid name ([a-z0-9._-], max 63)`);
  }
  if (names.has(name)) throw invalid(`${field}.name`, `${show(name)} is declared twice`);
  names.add(name);
  const ups = obj.upstreams;
  if (!Array.isArray(ups) || ups.length === 0) {
    throw invalid(`${field}.upstreams`, 'expected a non-empty list of URLs');
  }
  const origin: OriginConfig = {
    name,
    hosts: parseHosts(obj.hosts, `${field}.hosts`, hosts, name),
    upstreams: ups.map((u, j) => parseUpstream(u, `${field}.upstreams[${j}]`)),
  };
  if (obj.healthCheck !== undefined) {
    origin.healthCheck = parseHealthCheck(obj.healthCheck, `${field}.healthCheck`);
  }
  return origin;
}

function readToken(obj: Record<string, unknown>, baseDir: string): string {
  if (obj.token !== undefined && obj.tokenFile !== undefined) {
    throw invalid('token', 'give either token or tokenFile, not both');
  }
  let token: unknown = obj.token;
  if (obj.tokenFile !== undefined) {
    if (typeof obj.tokenFile !== 'string' || obj.tokenFile === '') {
      throw invalid('tokenFile', `${show(obj.tokenFile)} is not a path`);
    }
    const file = path.resolve(baseDir, obj.tokenFile);
    try {
      token = readFileSync(file, 'utf8').trim();
    } catch (err) {
      throw new RelayError('ERR_CONFIG_INVALID', `tokenFile: cannot read ${show(file)}`, {
        cause: err,
        details: { field: 'tokenFile' },
      });
    }
  }
  if (typeof token !== 'string' || token.length < MIN_TOKEN_LENGTH) {
    // Never echo the token itself.
    throw invalid(
      obj.tokenFile === undefined ? 'token' : 'tokenFile',
      `missing or shorter than ${MIN_TOKEN_LENGTH} characters`,
    );
  }
  return token;
}

/** Options for {@link parseClusterConfig}. */
export interface ParseClusterConfigOptions {
  /** Directory `tokenFile` is resolved against. @default process.cwd() */
  baseDir?: string;
  /**
   * A token given elsewhere (the CLI's --token or RELAYMESH_TOKEN). When set, the config
   * may omit token/tokenFile; when both are present this one wins.
   */
  tokenOverride?: string;
}

/**
 * Validates a parsed YAML/JSON document as a cluster config. Throws ERR_CONFIG_INVALID
 * with a message that names the field and the problem, e.g.
 * `origins[1].upstreams[0]: "ftp://x" is not an http:// or tcp:// URL`.
 */
export function validateClusterConfig(
  doc: unknown,
  options: ParseClusterConfigOptions = {},
): ClusterConfig {
  const obj = asObject(doc ?? {}, '(root)');
  checkKeys(obj, TOP_LEVEL_KEYS, '');
  let token: string;
  if (options.tokenOverride !== undefined) {
    if (options.tokenOverride.length < MIN_TOKEN_LENGTH) {
      throw invalid('token', `missing or shorter than ${MIN_TOKEN_LENGTH} characters`);
    }
    token = options.tokenOverride;
  } else {
    token = readToken(obj, options.baseDir ?? process.cwd());
  }
  const list = obj.origins ?? [];
  if (!Array.isArray(list)) throw invalid('origins', `expected a list, got ${show(list)}`);
  const names = new Set<string>();
  const hosts = new Map<string, string>();
  const origins = list.map((o, i) => parseOrigin(o, i, names, hosts));
  return { token, origins };
}

/** Parses YAML text (JSON is YAML too) and validates it; see {@link validateClusterConfig}. */
export function parseClusterConfig(
  text: string,
  options: ParseClusterConfigOptions = {},
): ClusterConfig {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new RelayError('ERR_CONFIG_INVALID', `not valid YAML: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return validateClusterConfig(doc, options);
}

/**
 * Reads and validates a cluster config file. `tokenFile` is resolved relative to the
 * config file's directory. Throws ERR_CONFIG_INVALID (also when the file cannot be read).
 */
export function loadClusterConfig(
  file: string,
  options: Omit<ParseClusterConfigOptions, 'baseDir'> = {},
): ClusterConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new RelayError('ERR_CONFIG_INVALID', `cannot read config file ${show(file)}`, {
      cause: err,
    });
  }
  return parseClusterConfig(text, { ...options, baseDir: path.dirname(path.resolve(file)) });
}
