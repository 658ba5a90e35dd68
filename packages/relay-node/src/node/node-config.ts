import { readFileSync } from 'node:fs';
import path from 'node:path';
import { MIN_TOKEN_LENGTH, parseYaml, RelayError } from '@relaymesh/shared';
import { CPU_LIST } from '../proxy/lane/renice.ts';
import { type ForwardRule, parseForwardRule } from '../proxy/tcp/forward-server.ts';
import type { HostPort, RelayNodeOptions } from './relay-node.ts';

/**
 * A node's settings as written (config file or flags), before validation. Flags override
 * the file field by field (`relaymesh node --config node.yaml --http-listen ...`).
 */
export interface NodeSettings {
  id?: string;
  region?: string;
  /** Coordinator HOST:PORT. */
  coordinator?: string;
  token?: string;
  /** HOST:PORT. */
  tunnelListen?: string;
  advertise?: string;
  egressProxy?: string;
  /** HOST:PORT. */
  httpListen?: string;
  httpAdvertise?: string;
  /** `[HOST:]PORT=ORIGIN` each. */
  forwards?: string[];
  debugHeaders?: boolean;
  logLevel?: string;
  closeGraceMs?: number;
  /** Who accepts the entry's client connections: `process` (the default) or `inline`. */
  entryAcceptor?: string;
  /** The acceptor process's nice value, 0-19 (default 5). */
  entryAcceptorNice?: number;
  /** The entry's slow lane: `on` (the default with an acceptor process) or `off`. */
  slowLane?: string;
  /** The slow lane's scheduling: `idle` (SCHED_IDLE, the default) or `nice` (nice 10 alone). */
  slowLanePolicy?: string;
  /** The CPUs the slow lane runs on: a Linux CPU list (`1`, `2-3`, `1,3`). */
  slowLaneCpus?: string;
}

/** Validated settings: RelayNode options plus what only the process uses. */
export interface ResolvedNodeSettings {
  node: Omit<RelayNodeOptions, 'logger' | 'clock' | 'dialer' | 'timers'>;
  logLevel: string;
  closeGraceMs: number;
}

const STRING_KEYS = [
  'id',
  'region',
  'coordinator',
  'token',
  'tokenFile',
  'tunnelListen',
  'advertise',
  'egressProxy',
  'httpListen',
  'httpAdvertise',
  'logLevel',
  'entryAcceptor',
  'slowLane',
  'slowLanePolicy',
] as const;
const KEYS = new Set<string>([
  ...STRING_KEYS,
  'forwards',
  'debugHeaders',
  'closeGraceMs',
  'entryAcceptorNice',
  'slowLaneCpus',
]);
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

function invalid(field: string, problem: string, cause?: unknown): RelayError {
  return new RelayError('ERR_CONFIG_INVALID', `${field}: ${problem}`, {
    details: { field },
    ...(cause === undefined ? {} : { cause }),
  });
}

function show(value: unknown): string {
  return JSON.stringify(value) ?? String(value);
}

/**
 * Reads a node config file (YAML, keys as in {@link NodeSettings} plus `tokenFile`, a path
 * relative to the file). Unknown keys are errors (usually typos).
 * @throws RelayError ERR_CONFIG_INVALID naming the field.
 */
export function loadNodeConfigFile(file: string): NodeSettings {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw invalid('--config', `cannot read ${show(file)}`, err);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw invalid('--config', `${show(file)} is not valid YAML`, err);
  }
  return parseNodeConfig(doc ?? {}, path.dirname(file));
}

/** Validates the shape of a parsed config document. See {@link loadNodeConfigFile}. */
export function parseNodeConfig(doc: unknown, baseDir: string): NodeSettings {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw invalid('config', `expected a mapping, got ${show(doc)}`);
  }
  const obj = doc as Record<string, unknown>;
  for (const key of Object.keys(obj)) if (!KEYS.has(key)) throw invalid(key, 'unknown field');
  const out: Record<string, unknown> = {};
  for (const key of STRING_KEYS) {
    const v = obj[key];
    if (v === undefined) continue;
    if (typeof v !== 'string') throw invalid(key, `${show(v)} is not a string`);
    out[key] = v;
  }
  if (obj.forwards !== undefined) {
    if (!Array.isArray(obj.forwards) || obj.forwards.some((f) => typeof f !== 'string')) {
      throw invalid('forwards', 'expected a list of "[HOST:]PORT=ORIGIN" strings');
    }
    out.forwards = obj.forwards;
  }
  if (obj.debugHeaders !== undefined) {
    if (typeof obj.debugHeaders !== 'boolean') {
      throw invalid('debugHeaders', `${show(obj.debugHeaders)} is not true or false`);
    }
    out.debugHeaders = obj.debugHeaders;
  }
  if (obj.closeGraceMs !== undefined) out.closeGraceMs = obj.closeGraceMs;
  if (obj.entryAcceptorNice !== undefined) out.entryAcceptorNice = obj.entryAcceptorNice;
  // YAML reads `slowLaneCpus: 1` as a number: one CPU, as a list of one.
  const cpus = obj.slowLaneCpus;
  if (cpus !== undefined) {
    if (typeof cpus === 'string') out.slowLaneCpus = cpus;
    else if (typeof cpus === 'number' && Number.isInteger(cpus) && cpus >= 0)
      out.slowLaneCpus = String(cpus);
    else throw invalid('slowLaneCpus', `${show(cpus)} is not a CPU list (e.g. 1, 2-3, 1,3)`);
  }
  if (out.tokenFile !== undefined) {
    if (out.token !== undefined) throw invalid('token', 'give either token or tokenFile, not both');
    const file = path.resolve(baseDir, out.tokenFile as string);
    try {
      out.token = readFileSync(file, 'utf8').trim();
    } catch (err) {
      throw invalid('tokenFile', `cannot read ${show(file)}`, err);
    }
    delete out.tokenFile;
  }
  return out as NodeSettings;
}

/** `HOST:PORT` or `[V6]:PORT`; port 0 allowed when `zeroOk`. */
export function parseHostPort(text: string, field: string, zeroOk = true): HostPort {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(text.trim());
  const port = Number(m?.[3]);
  if (!m || port > 65535 || (port === 0 && !zeroOk)) {
    throw invalid(field, `${show(text)} is not HOST:PORT`);
  }
  return { host: (m[1] ?? m[2]) as string, port };
}

function checkUrl(value: string, field: string, scheme: 'ws:' | 'http:'): string {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw invalid(field, `${show(value)} is not a ${scheme}// URL`);
  }
  if (u.protocol !== scheme || u.hostname === '' || u.port === '') {
    throw invalid(field, `${show(value)} is not a ${scheme}//HOST:PORT URL`);
  }
  return value;
}

function required(s: NodeSettings, key: 'id' | 'region' | 'coordinator', flag: string): string {
  const v = s[key];
  if (v === undefined || v === '') throw invalid(flag, 'required');
  return v;
}

/**
 * Validates merged settings into RelayNode options.
 * @throws RelayError ERR_CONFIG_INVALID naming the flag (`--id`, `--tunnel-listen`, ...).
 */
export function resolveNodeSettings(s: NodeSettings): ResolvedNodeSettings {
  const id = required(s, 'id', '--id');
  if (!ID_RE.test(id)) throw invalid('--id', `${show(id)} is not a node id ([A-Za-z0-9._-])`);
  const region = required(s, 'region', '--region');
  const coordinator = required(s, 'coordinator', '--coordinator');
  parseHostPort(coordinator, '--coordinator', false);
  if (s.token === undefined || s.token === '') {
    throw invalid('--token', 'no cluster token: pass --token, set RELAYMESH_TOKEN or tokenFile');
  }
  if (s.token.length < MIN_TOKEN_LENGTH) {
    throw invalid('--token', `shorter than ${MIN_TOKEN_LENGTH} characters`);
  }
  if (s.tunnelListen === undefined) throw invalid('--tunnel-listen', 'required');
  const logLevel = s.logLevel ?? 'info';
  if (!LEVELS.has(logLevel)) throw invalid('--log-level', `${show(logLevel)} is not a level`);
  const closeGraceMs = s.closeGraceMs ?? 10_000;
  if (!Number.isInteger(closeGraceMs) || closeGraceMs < 0) {
    throw invalid('closeGraceMs', `${show(closeGraceMs)} is not a non-negative integer`);
  }
  const forwards: ForwardRule[] = (s.forwards ?? []).map((f) => parseForwardRule(f));
  const node: ResolvedNodeSettings['node'] = {
    id,
    region,
    coordinator,
    token: s.token,
    tunnelListen: parseHostPort(s.tunnelListen, '--tunnel-listen'),
    forwards,
    debugHeaders: s.debugHeaders ?? false,
    closeGraceMs,
  };
  const acceptor = s.entryAcceptor ?? 'process';
  if (acceptor !== 'process' && acceptor !== 'inline') {
    throw invalid('--entry-acceptor', `${show(acceptor)} is not process or inline`);
  }
  if (s.httpListen !== undefined) node.entryAcceptor = acceptor;
  if (s.entryAcceptorNice !== undefined) {
    const nice = s.entryAcceptorNice;
    if (typeof nice !== 'number' || !Number.isInteger(nice) || nice < 0 || nice > 19)
      throw invalid('--entry-acceptor-nice', `${show(nice)} is not an integer 0-19`);
    if (acceptor !== 'process')
      throw invalid('--entry-acceptor-nice', 'needs --entry-acceptor process');
    if (s.httpListen !== undefined) node.entryAcceptorNice = nice;
  }
  const lane = s.slowLane ?? (acceptor === 'process' ? 'on' : 'off');
  if (lane !== 'on' && lane !== 'eager' && lane !== 'off')
    throw invalid('--slow-lane', `${show(lane)} is not on, eager or off`);
  if (lane !== 'off' && acceptor !== 'process')
    throw invalid('--slow-lane', `${lane} needs --entry-acceptor process`);
  if (s.httpListen !== undefined && lane !== 'off') node.slowLane = lane === 'on' ? true : 'eager';
  if (s.slowLanePolicy !== undefined) {
    const policy = s.slowLanePolicy;
    if (policy !== 'idle' && policy !== 'nice')
      throw invalid('--slow-lane-policy', `${show(policy)} is not idle or nice`);
    if (lane === 'off')
      throw invalid('--slow-lane-policy', 'needs the slow lane (--slow-lane on or eager)');
    if (s.httpListen !== undefined) node.slowLanePolicy = policy;
  }
  if (s.slowLaneCpus !== undefined) {
    if (!CPU_LIST.test(s.slowLaneCpus))
      throw invalid(
        '--slow-lane-cpus',
        `${show(s.slowLaneCpus)} is not a CPU list (e.g. 1, 2-3, 1,3)`,
      );
    if (lane === 'off')
      throw invalid('--slow-lane-cpus', 'needs the slow lane (--slow-lane on or eager)');
    if (s.httpListen !== undefined) node.slowLaneCpus = s.slowLaneCpus;
  }
  if (s.advertise !== undefined) node.advertise = checkUrl(s.advertise, '--advertise', 'ws:');
  if (s.egressProxy !== undefined) {
    node.egressProxy = checkUrl(s.egressProxy, '--egress-proxy', 'http:');
  }
  if (s.httpListen !== undefined) node.httpListen = parseHostPort(s.httpListen, '--http-listen');
  if (s.httpAdvertise !== undefined) {
    if (s.httpListen === undefined) throw invalid('--http-advertise', 'needs --http-listen');
    node.httpAdvertise = checkUrl(s.httpAdvertise, '--http-advertise', 'http:');
  }
  return { node, logLevel, closeGraceMs };
}
