import type { Readable } from 'node:stream';
import { type Clock, RelayError, systemClock } from '@relaymesh/shared';

/**
 * The two messages of the data plane (normative text: docs/data-plane.md). Each is
 * length-prefixed JSON: a 4-byte big-endian length, then that many bytes of UTF-8 JSON.
 *
 * ```
 *  entry ── OPEN HEADER ─> relay ── OPEN HEADER' ─> exit      (then request body / raw bytes)
 *  entry <─ RESPONSE HEAD ─────────────────────────── exit     (then response body / raw bytes)
 * ```
 */

export const DATA_PLANE_VERSION = 1;
/** Largest open header accepted (the JSON, not counting the 4-byte prefix). */
export const MAX_OPEN_HEADER_BYTES = 16 * 1024;
/** Largest response head accepted (origin headers are capped at 16 KiB by undici). */
export const MAX_RESPONSE_HEAD_BYTES = 32 * 1024;
/** Most tunnels a stream may cross (entry to exit); RON/Detour: one intermediate suffices. */
export const MAX_HOPS = 4;

/** Largest capacity probe a peer answers (kind 'probe', field `bytes`). */
export const MAX_PROBE_BYTES = 1024 * 1024;

export const StreamKind = {
  HTTP: 'http',
  TCP: 'tcp',
  UPGRADE: 'upgrade',
  /** A capacity probe: the receiving peer answers 200 and `bytes` bytes; never relayed. */
  PROBE: 'probe',
} as const;
export type StreamKind = (typeof StreamKind)[keyof typeof StreamKind];

export type HeaderPairs = Array<[string, string]>;

/** An HTTP request head, after hop-by-hop removal and forwarded headers added. */
export interface RequestHead {
  method: string;
  /** origin-form: path and query, starting with '/'. */
  target: string;
  headers: HeaderPairs;
  /** Request body length in bytes; -1 when unknown (chunked). 0: no body. */
  bodyLength: number;
}

export interface OpenHeader {
  v: typeof DATA_PLANE_VERSION;
  kind: StreamKind;
  /** The origin's name; '' for kind 'probe' (which has none on the wire). */
  origin: string;
  /** Node ids still to visit after the receiver; [] when the receiver is the exit. */
  hops: string[];
  /** Node ids visited so far, entry first, the sender last. */
  path: string[];
  /** Request id, for logs on every node. */
  id: string;
  /** kind 'tcp' from CONNECT: the port the client asked for (selects upstreams). */
  port?: number;
  /** kind 'http' and 'upgrade'. */
  head?: RequestHead;
  /** kind 'probe': how many bytes the peer sends back, 1..MAX_PROBE_BYTES. */
  bytes?: number;
}

export interface ResponseHead {
  v: typeof DATA_PLANE_VERSION;
  /** HTTP status; for 'tcp'/'upgrade' 200 means connected. On error: 502 or 504. */
  status: number;
  headers: HeaderPairs;
  /** Set when the exit could not serve the stream; `code` is a registry code. */
  error?: { code: string; message: string };
}

const NODE_ID = /^[A-Za-z0-9._-]{1,128}$/;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// Field values: visible ASCII, obs-text, space and tab; never CR, LF or NUL (no smuggling).
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const TARGET = /^\/[\x21-\x7e]*$/;
const OPEN_KEYS = new Set(['v', 'kind', 'origin', 'hops', 'path', 'id', 'port', 'head', 'bytes']);
const PROBE_KEYS = new Set(['v', 'kind', 'hops', 'path', 'id', 'bytes']);

function bad(message: string): RelayError {
  return new RelayError('ERR_PROXY_BAD_OPEN_HEADER', message);
}

/** Encodes a message as 4-byte length + JSON. */
export function encodePrefixed(message: OpenHeader | ResponseHead): Buffer {
  // Encoded straight into the output (no intermediate Buffer and copy: one per request).
  const json = JSON.stringify(message);
  const n = Buffer.byteLength(json, 'utf8');
  const out = Buffer.allocUnsafe(4 + n);
  out.writeUInt32BE(n, 0);
  out.write(json, 4, 'utf8');
  return out;
}

function parseJson(bytes: Buffer): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new RelayError('ERR_PROXY_BAD_OPEN_HEADER', 'message is not valid json', { cause: err });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw bad('message is not a json object');
  }
  const obj = value as Record<string, unknown>;
  if (obj.v !== DATA_PLANE_VERSION) throw bad(`unsupported data plane version ${String(obj.v)}`);
  return obj;
}

function nodeIds(value: unknown, field: string): string[] {
  if (!Array.isArray(value) || value.length > MAX_HOPS + 1)
    throw bad(`${field} is not a short list`);
  for (const id of value) {
    if (typeof id !== 'string' || !NODE_ID.test(id)) throw bad(`${field} holds a bad node id`);
  }
  return value as string[];
}

/** Validates header pairs: token names, values without CR/LF/NUL. */
export function validHeaders(value: unknown, max = 256): HeaderPairs {
  if (!Array.isArray(value) || value.length > max) throw bad('headers is not a short list');
  for (const pair of value) {
    if (!Array.isArray(pair) || pair.length !== 2) throw bad('header is not a [name, value] pair');
    const [name, v] = pair as unknown[];
    if (typeof name !== 'string' || !TOKEN.test(name)) throw bad('header name is not a token');
    if (typeof v !== 'string' || !FIELD_VALUE.test(v)) throw bad(`header ${name} has a bad value`);
  }
  return value as HeaderPairs;
}

function requestHead(value: unknown): RequestHead {
  if (typeof value !== 'object' || value === null) throw bad('head is not an object');
  const h = value as Record<string, unknown>;
  if (typeof h.method !== 'string' || !TOKEN.test(h.method) || h.method.length > 32) {
    throw bad('head.method is not a token');
  }
  if (typeof h.target !== 'string' || h.target.length > 8192 || !TARGET.test(h.target)) {
    throw bad('head.target is not an origin-form target');
  }
  const len = h.bodyLength;
  if (typeof len !== 'number' || !Number.isSafeInteger(len) || len < -1) {
    throw bad('head.bodyLength is not an integer >= -1');
  }
  return { method: h.method, target: h.target, headers: validHeaders(h.headers), bodyLength: len };
}

/**
 * Decodes and strictly validates an open header. Throws ERR_PROXY_BAD_OPEN_HEADER for any
 * malformed or unknown field, and ERR_PROXY_HOP_LIMIT when the path is too long or loops.
 */
export function decodeOpenHeader(bytes: Buffer): OpenHeader {
  const o = parseJson(bytes);
  for (const key of Object.keys(o)) if (!OPEN_KEYS.has(key)) throw bad(`unknown field ${key}`);
  const kind = o.kind;
  if (kind === 'probe') return probeHeader(o);
  if (kind !== 'http' && kind !== 'tcp' && kind !== 'upgrade') throw bad('kind is not known');
  if (o.bytes !== undefined) throw bad('bytes is only for probes');
  if (typeof o.origin !== 'string' || !NODE_ID.test(o.origin)) throw bad('origin is not a name');
  if (typeof o.id !== 'string' || o.id.length === 0 || o.id.length > 64) throw bad('id is bad');
  const hops = nodeIds(o.hops, 'hops');
  const path = nodeIds(o.path, 'path');
  if (path.length === 0) throw bad('path is empty');
  const header: OpenHeader = {
    v: DATA_PLANE_VERSION,
    kind,
    origin: o.origin,
    hops,
    path,
    id: o.id,
  };
  if (o.port !== undefined) {
    if (typeof o.port !== 'number' || !Number.isInteger(o.port) || o.port < 1 || o.port > 65535) {
      throw bad('port is not a tcp port');
    }
    header.port = o.port;
  }
  if (kind === 'tcp') {
    if (o.head !== undefined) throw bad('tcp stream carries a request head');
  } else {
    header.head = requestHead(o.head);
  }
  if (path.length + hops.length > MAX_HOPS) {
    throw new RelayError('ERR_PROXY_HOP_LIMIT', `path of ${path.length + hops.length} hops`);
  }
  if (new Set([...path, ...hops]).size !== path.length + hops.length) {
    throw new RelayError('ERR_PROXY_HOP_LIMIT', 'path visits a node twice');
  }
  return header;
}

/** The open header of a capacity probe to the directly connected peer `path[0]` sent to. */
export function probeOpenHeader(id: string, sender: string, bytes: number): OpenHeader {
  return { v: DATA_PLANE_VERSION, kind: 'probe', origin: '', hops: [], path: [sender], id, bytes };
}

/** Encodes a probe's open header (no origin field on the wire). */
export function encodeProbeHeader(h: OpenHeader): Buffer {
  const { origin: _origin, ...wire } = h;
  return encodePrefixed(wire as OpenHeader);
}

/** kind 'probe': no origin, port or head; hops [] (a probe never passes the peer). */
function probeHeader(o: Record<string, unknown>): OpenHeader {
  for (const key of Object.keys(o)) if (!PROBE_KEYS.has(key)) throw bad(`probe with field ${key}`);
  if (typeof o.id !== 'string' || o.id.length === 0 || o.id.length > 64) throw bad('id is bad');
  const hops = nodeIds(o.hops, 'hops');
  if (hops.length !== 0) throw bad('a probe has hops');
  const path = nodeIds(o.path, 'path');
  if (path.length !== 1) throw bad('a probe path is its sender alone');
  const n = o.bytes;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > MAX_PROBE_BYTES) {
    throw bad(`probe bytes is not an integer 1..${MAX_PROBE_BYTES}`);
  }
  return probeOpenHeader(o.id, path[0]!, n);
}

/** Decodes and validates a response head. Throws ERR_PROXY_BAD_OPEN_HEADER. */
export function decodeResponseHead(bytes: Buffer): ResponseHead {
  const o = parseJson(bytes);
  const status = o.status;
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 100 || status > 599) {
    throw bad('status is not an http status');
  }
  const head: ResponseHead = {
    v: DATA_PLANE_VERSION,
    status,
    headers: validHeaders(o.headers, 512),
  };
  if (o.error !== undefined) {
    const e = o.error as Record<string, unknown> | null;
    if (typeof e !== 'object' || e === null) throw bad('error is not an object');
    if (typeof e.code !== 'string' || typeof e.message !== 'string') throw bad('error is bad');
    head.error = { code: e.code.slice(0, 64), message: e.message.slice(0, 512) };
  }
  return head;
}

/**
 * Reads one length-prefixed message from the start of `stream`, leaving every byte after it
 * in the stream (unshifted) for whoever reads next. Rejects with ERR_PROXY_BAD_OPEN_HEADER
 * (too large, truncated, stream ended) or ERR_PROXY_HEAD_TIMEOUT.
 */
export function readPrefixed(
  stream: Readable,
  maxBytes: number,
  timeoutMs: number,
  clock: Clock = systemClock,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    const timer = clock.setTimeout(
      () => finish(new RelayError('ERR_PROXY_HEAD_TIMEOUT', `no head within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const finish = (err: Error | null, msg?: Buffer, rest?: Buffer) => {
      clock.clearTimeout(timer);
      stream.off('readable', onReadable);
      stream.off('end', onEnd);
      stream.off('close', onEnd);
      stream.off('error', onError);
      if (err) return reject(err);
      if (rest && rest.length > 0) stream.unshift(rest);
      resolve(msg as Buffer);
    };
    const onReadable = () => {
      let chunk: Buffer | null = stream.read() as Buffer | null;
      while (chunk !== null) {
        buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
        if (buf.length >= 4) {
          const need = buf.readUInt32BE(0);
          if (need === 0 || need > maxBytes) return finish(bad(`head of ${need} bytes`));
          if (buf.length >= 4 + need) {
            return finish(null, buf.subarray(4, 4 + need), buf.subarray(4 + need));
          }
        }
        chunk = stream.read() as Buffer | null;
      }
    };
    const onEnd = () => finish(bad('stream ended inside the head'));
    const onError = (err: Error) => finish(err);
    stream.on('readable', onReadable);
    stream.once('end', onEnd);
    stream.once('close', onEnd);
    stream.once('error', onError);
    onReadable();
  });
}
