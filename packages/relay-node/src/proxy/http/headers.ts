import type { OutgoingHttpHeaders } from 'node:http';
import type { HeaderPairs } from '../open-header.ts';

/** RFC 9110 7.6.1 hop-by-hop fields, plus the proxy ones that are meant for us alone. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  // Node answers `Expect: 100-continue` itself, and undici refuses the field.
  'expect',
]);

/** Names listed in Connection (lowercase), which are hop-by-hop as well. */
function connectionTokens(value: string | string[] | undefined): Set<string> {
  const out = new Set<string>();
  const values = Array.isArray(value) ? value : value === undefined ? [] : [value];
  for (const v of values) {
    for (const t of v.split(',')) {
      const name = t.trim().toLowerCase();
      if (name) out.add(name);
    }
  }
  return out;
}

/**
 * Header pairs from Node's `rawHeaders` (order and case kept), without hop-by-hop fields.
 * `keep` names survive (Upgrade, for WebSocket handshakes).
 */
export function endToEndPairs(
  rawHeaders: string[],
  keep: ReadonlySet<string> = new Set(),
): HeaderPairs {
  const listed = new Set<string>();
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if (rawHeaders[i]?.toLowerCase() === 'connection') {
      for (const t of connectionTokens(rawHeaders[i + 1])) listed.add(t);
    }
  }
  const out: HeaderPairs = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string;
    const lower = name.toLowerCase();
    if (keep.has(lower) || (!HOP_BY_HOP.has(lower) && !listed.has(lower))) {
      out.push([name, rawHeaders[i + 1] as string]);
    }
  }
  return out;
}

/** Same as {@link endToEndPairs} for undici's response header object. */
export function responsePairs(headers: Record<string, string | string[] | undefined>): HeaderPairs {
  const listed = connectionTokens(headers.connection);
  const out: HeaderPairs = [];
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || listed.has(name)) continue;
    for (const v of Array.isArray(value) ? value : [value]) out.push([name, v]);
  }
  return out;
}

/** Appends `value` to the comma-separated field `name` (case-insensitive), or adds it. */
export function appendField(pairs: HeaderPairs, name: string, value: string): void {
  const lower = name.toLowerCase();
  const found = pairs.find(([n]) => n.toLowerCase() === lower);
  if (found) found[1] = `${found[1]}, ${value}`;
  else pairs.push([name, value]);
}

/** Replaces (or adds) the field `name`. */
export function setField(pairs: HeaderPairs, name: string, value: string): void {
  const lower = name.toLowerCase();
  for (let i = pairs.length - 1; i >= 0; i--) {
    if (pairs[i]?.[0].toLowerCase() === lower) pairs.splice(i, 1);
  }
  pairs.push([name, value]);
}

export interface ForwardedInfo {
  clientIp: string;
  /** The Host the client asked for (with port if it gave one). */
  host: string;
  /** This node's id, for Via. */
  nodeId: string;
}

/** Adds X-Forwarded-For/-Proto/-Host and Via (RFC 9110 7.6.3) to request pairs. */
export function addForwarded(pairs: HeaderPairs, info: ForwardedInfo): void {
  appendField(pairs, 'X-Forwarded-For', info.clientIp);
  setField(pairs, 'X-Forwarded-Proto', 'http');
  setField(pairs, 'X-Forwarded-Host', info.host);
  appendField(pairs, 'Via', `1.1 ${info.nodeId}`);
}

/** Header pairs as a Node outgoing header object (repeated names become arrays). */
export function toOutgoing(pairs: HeaderPairs): OutgoingHttpHeaders {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of pairs) {
    const key = name.toLowerCase();
    const prev = out[key];
    if (prev === undefined) out[key] = value;
    else if (Array.isArray(prev)) prev.push(value);
    else out[key] = [prev, value];
  }
  return out;
}

/** Lowercase host without port and without IPv6 brackets: `Files.X:8080` -> `files.x`. */
export function bareHost(authority: string): string {
  const a = authority.trim().toLowerCase();
  if (a.startsWith('[')) return a.slice(1, a.indexOf(']') > 0 ? a.indexOf(']') : undefined);
  const colon = a.lastIndexOf(':');
  return colon >= 0 ? a.slice(0, colon) : a;
}
