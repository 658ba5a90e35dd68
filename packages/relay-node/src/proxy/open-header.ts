import type { Readable } from 'node:stream';
import { type Clock, RelayError, systemClock } from '@relaymesh/shared';
import { badHeader as bad, WireReader, WireWriter } from './wire-cursor.ts';

/**
 * The two messages of the data plane (normative text: docs/data-plane.md §2). Each is a
 * 4-byte big-endian length, then that many bytes of a compact binary layout (version 2;
 * version 1 was JSON).
 *
 * ```
 *  entry ── OPEN HEADER ─> relay ── OPEN HEADER' ─> exit      (then request body / raw bytes)
 *  entry <─ RESPONSE HEAD ─────────────────────────── exit     (then response body / raw bytes)
 * ```
 */

export const DATA_PLANE_VERSION = 2;
/** Largest open header accepted (the message, not counting the 4-byte prefix). */
export const MAX_OPEN_HEADER_BYTES = 16 * 1024;
/** Largest response head accepted (origin headers are capped at 16 KiB by undici). */
export const MAX_RESPONSE_HEAD_BYTES = 32 * 1024;
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

/** Stream kinds on the wire: the code is the index. */
const KINDS: readonly (StreamKind | undefined)[] = [undefined, 'http', 'tcp', 'upgrade', 'probe'];
const KIND_CODES: Readonly<Record<StreamKind, number>> = { http: 1, tcp: 2, upgrade: 3, probe: 4 };

/** OPEN HEADER flags: which optional fields follow the path. */
const HAS_PORT = 1;
const HAS_HEAD = 2;
const HAS_BYTES = 4;
/** RESPONSE HEAD flags. */
const HAS_ERROR = 1;
/** What an error head carries at most (longer values are cut by the sender and the receiver). */
const ERROR_CODE_CHARS = 64;
const ERROR_MESSAGE_CHARS = 512;

const bound = WireWriter.bound;

function pairsBound(pairs: HeaderPairs): number {
  let n = 2;
  for (const [name, value] of pairs) n += 4 + bound(name) + bound(value);
  return n;
}

function writePairs(w: WireWriter, pairs: HeaderPairs): void {
  w.u16(pairs.length);
  for (const [name, value] of pairs) {
    w.str16(name, 'header name');
    w.str16(value, 'header value');
  }
}

/**
 * Encodes an OPEN HEADER (docs/data-plane.md §2.1) with its length prefix. Throws
 * ERR_PROXY_BAD_OPEN_HEADER when a string does not fit its length field.
 */
export function encodeOpenHeader(h: OpenHeader): Buffer {
  const head = h.head;
  let size = 7 + bound(h.origin) + bound(h.id) + 2 + 4;
  for (const id of h.hops) size += 1 + bound(id);
  for (const id of h.path) size += 1 + bound(id);
  if (head) size += 1 + bound(head.method) + 2 + bound(head.target) + 8 + pairsBound(head.headers);
  const w = new WireWriter(size);
  w.u8(DATA_PLANE_VERSION);
  w.u8(KIND_CODES[h.kind] ?? 0);
  w.u8(
    (h.port === undefined ? 0 : HAS_PORT) |
      (head === undefined ? 0 : HAS_HEAD) |
      (h.bytes === undefined ? 0 : HAS_BYTES),
  );
  w.u8(h.hops.length);
  w.u8(h.path.length);
  w.str8(h.origin, 'origin');
  w.str8(h.id, 'id');
  for (const id of h.hops) w.str8(id, 'hops');
  for (const id of h.path) w.str8(id, 'path');
  if (h.port !== undefined) w.u16(h.port);
  if (h.bytes !== undefined) w.u32(h.bytes);
  if (head) {
    w.str8(head.method, 'head.method');
    w.str16(head.target, 'head.target');
    w.f64(head.bodyLength);
    writePairs(w, head.headers);
  }
  return w.finish();
}

/** Encodes a RESPONSE HEAD (docs/data-plane.md §2.2) with its length prefix. */
export function encodeResponseHead(h: ResponseHead): Buffer {
  const code = h.error?.code.slice(0, ERROR_CODE_CHARS) ?? '';
  const message = h.error?.message.slice(0, ERROR_MESSAGE_CHARS) ?? '';
  const w = new WireWriter(4 + pairsBound(h.headers) + 3 + bound(code) + bound(message));
  w.u8(DATA_PLANE_VERSION);
  w.u8(h.error ? HAS_ERROR : 0);
  w.u16(h.status);
  writePairs(w, h.headers);
  if (h.error) {
    w.str8(code, 'error.code');
    w.str16(message, 'error.message');
  }
  return w.finish();
}

/** Either message with its 4-byte length prefix. */
export function encodePrefixed(message: OpenHeader | ResponseHead): Buffer {
  return 'status' in message ? encodeResponseHead(message) : encodeOpenHeader(message);
}

function readVersion(r: WireReader): void {
  const v = r.u8('version');
  // '{': a version 1 (JSON) peer. Named, so a mixed-version mesh is easy to diagnose.
  if (v === 0x7b)
    throw bad(`json message of data plane version 1 (this node speaks ${DATA_PLANE_VERSION})`);
  if (v !== DATA_PLANE_VERSION) throw bad(`unsupported data plane version ${v}`);
}

function readNodeIds(r: WireReader, n: number, field: string): string[] {
  if (n > MAX_HOPS + 1) throw bad(`${field} is not a short list`);
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const id = r.str8(field);
    if (!NODE_ID.test(id)) throw bad(`${field} holds a bad node id`);
    ids.push(id);
  }
  return ids;
}

/** Header pairs: token names, values without CR/LF/NUL, at most `max`. */
function readPairs(r: WireReader, max: number): HeaderPairs {
  const n = r.u16('headers');
  if (n > max) throw bad('headers is not a short list');
  const pairs: HeaderPairs = [];
  for (let i = 0; i < n; i++) {
    const name = r.str16('header name');
    if (!TOKEN.test(name)) throw bad('header name is not a token');
    const value = r.str16('header value');
    if (!FIELD_VALUE.test(value)) throw bad(`header ${name} has a bad value`);
    pairs.push([name, value]);
  }
  return pairs;
}

function readRequestHead(r: WireReader): RequestHead {
  const method = r.str8('head.method');
  if (!TOKEN.test(method) || method.length > 32) throw bad('head.method is not a token');
  const target = r.str16('head.target');
  if (target.length > 8192 || !TARGET.test(target)) {
    throw bad('head.target is not an origin-form target');
  }
  const bodyLength = r.f64('head.bodyLength');
  if (!Number.isSafeInteger(bodyLength) || bodyLength < -1) {
    throw bad('head.bodyLength is not an integer >= -1');
  }
  return { method, target, headers: readPairs(r, 256), bodyLength };
}

/** The fields of an open header as read, before the checks that depend on its kind. */
interface RawOpenHeader {
  kind: StreamKind;
  origin: string;
  id: string;
  hops: string[];
  path: string[];
  port: number | undefined;
  bytes: number | undefined;
  head: RequestHead | undefined;
}

function readOpenHeader(bytes: Buffer): RawOpenHeader {
  const r = new WireReader(bytes);
  readVersion(r);
  const kind = KINDS[r.u8('kind')];
  if (kind === undefined) throw bad('kind is not known');
  const flags = r.u8('flags');
  if ((flags & ~(HAS_PORT | HAS_HEAD | HAS_BYTES)) !== 0) throw bad(`unknown flags ${flags}`);
  const nHops = r.u8('hops');
  const nPath = r.u8('path');
  const origin = r.str8('origin');
  const id = r.str8('id');
  const hops = readNodeIds(r, nHops, 'hops');
  const path = readNodeIds(r, nPath, 'path');
  const port = (flags & HAS_PORT) !== 0 ? r.u16('port') : undefined;
  const n = (flags & HAS_BYTES) !== 0 ? r.u32('bytes') : undefined;
  const head = (flags & HAS_HEAD) !== 0 ? readRequestHead(r) : undefined;
  r.end('open header');
  return { kind, origin, id, hops, path, port, bytes: n, head };
}

function checkId(id: string): void {
  if (id.length === 0 || id.length > 64) throw bad('id is bad');
}

/**
 * Decodes and strictly validates an open header (the bytes after the length prefix).
 * Throws ERR_PROXY_BAD_OPEN_HEADER for a malformed, truncated or over-long message or a
 * field its kind does not allow, and ERR_PROXY_HOP_LIMIT when the path is too long or loops.
 */
export function decodeOpenHeader(bytes: Buffer): OpenHeader {
  const o = readOpenHeader(bytes);
  const kind = o.kind;
  if (kind === 'probe') return probeHeader(o);
  if (o.bytes !== undefined) throw bad('bytes is only for probes');
  if (!NODE_ID.test(o.origin)) throw bad('origin is not a name');
  checkId(o.id);
  if (o.path.length === 0) throw bad('path is empty');
  const header: OpenHeader = {
    v: DATA_PLANE_VERSION,
    kind,
    origin: o.origin,
    hops: o.hops,
    path: o.path,
    id: o.id,
  };
  if (o.port !== undefined) {
    if (o.port < 1) throw bad('port is not a tcp port');
    header.port = o.port;
  }
  if (kind === 'tcp') {
    if (o.head !== undefined) throw bad('tcp stream carries a request head');
  } else {
    if (o.head === undefined) throw bad(`${kind} stream has no request head`);
    header.head = o.head;
  }
  const hops = o.path.length + o.hops.length;
  if (hops > MAX_HOPS) throw new RelayError('ERR_PROXY_HOP_LIMIT', `path of ${hops} hops`);
  if (new Set([...o.path, ...o.hops]).size !== hops) {
    throw new RelayError('ERR_PROXY_HOP_LIMIT', 'path visits a node twice');
  }
  return header;
}

/** The open header of a capacity probe to the directly connected peer `path[0]` sent to. */
export function probeOpenHeader(id: string, sender: string, bytes: number): OpenHeader {
  return { v: DATA_PLANE_VERSION, kind: 'probe', origin: '', hops: [], path: [sender], id, bytes };
}

/** kind 'probe': no origin (empty on the wire), port or head; hops [] (never past the peer). */
function probeHeader(o: RawOpenHeader): OpenHeader {
  if (o.origin !== '') throw bad('probe with field origin');
  if (o.port !== undefined) throw bad('probe with field port');
  if (o.head !== undefined) throw bad('probe with field head');
  checkId(o.id);
  if (o.hops.length !== 0) throw bad('a probe has hops');
  if (o.path.length !== 1) throw bad('a probe path is its sender alone');
  const n = o.bytes;
  if (n === undefined || n < 1 || n > MAX_PROBE_BYTES) {
    throw bad(`probe bytes is not an integer 1..${MAX_PROBE_BYTES}`);
  }
  return probeOpenHeader(o.id, o.path[0]!, n);
}

/** Decodes and validates a response head. Throws ERR_PROXY_BAD_OPEN_HEADER. */
export function decodeResponseHead(bytes: Buffer): ResponseHead {
  const r = new WireReader(bytes);
  readVersion(r);
  const flags = r.u8('flags');
  if ((flags & ~HAS_ERROR) !== 0) throw bad(`unknown flags ${flags}`);
  const status = r.u16('status');
  if (status < 100 || status > 599) throw bad('status is not an http status');
  const head: ResponseHead = { v: DATA_PLANE_VERSION, status, headers: readPairs(r, 512) };
  if ((flags & HAS_ERROR) !== 0) {
    const code = r.str8('error.code').slice(0, ERROR_CODE_CHARS);
    head.error = { code, message: r.str16('error.message').slice(0, ERROR_MESSAGE_CHARS) };
  }
  r.end('response head');
  return head;
}

/**
 * Reads one length-prefixed message from the start of `stream`, leaving every byte after it
 * in the stream for whoever reads next. Rejects with ERR_PROXY_BAD_OPEN_HEADER (too large,
 * truncated, stream ended) or ERR_PROXY_HEAD_TIMEOUT.
 *
 * Reads exactly the prefix, then exactly the message (`read(n)`): a bare `read()` returns
 * everything buffered as one copy, and a response head often comes with body chunks
 * behind it (~13 KiB copied per response, measured on an entry serving slow clients).
 */
export function readPrefixed(
  stream: Readable,
  maxBytes: number,
  timeoutMs: number,
  clock: Clock = systemClock,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    // The message's length once its prefix is read.
    let need: number | undefined;
    const timer = clock.setTimeout(
      () => finish(new RelayError('ERR_PROXY_HEAD_TIMEOUT', `no head within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const finish = (err: Error | null, msg?: Buffer) => {
      clock.clearTimeout(timer);
      stream.off('readable', onReadable);
      stream.off('end', onEnd);
      stream.off('close', onEnd);
      stream.off('error', onError);
      if (err) return reject(err);
      resolve(msg as Buffer);
    };
    // read(n) gives n bytes, or null until n are buffered; at the stream's end, fewer.
    const onReadable = () => {
      if (need === undefined) {
        const prefix = stream.read(4) as Buffer | null;
        if (prefix === null) return;
        if (prefix.length < 4) return finish(bad('stream ended inside the head'));
        need = prefix.readUInt32BE(0);
        if (need === 0 || need > maxBytes) return finish(bad(`head of ${need} bytes`));
      }
      const msg = stream.read(need) as Buffer | null;
      if (msg === null) return;
      if (msg.length < need) return finish(bad('stream ended inside the head'));
      finish(null, msg);
    };
    const onEnd = () => finish(bad('stream ended inside the head'));
    const onError = (err: Error) => finish(err);
    // `on`, not `once`: finish() removes all four, and a once-wrapper per listener per
    // request is measurable on small requests.
    stream.on('readable', onReadable);
    stream.on('end', onEnd);
    stream.on('close', onEnd);
    stream.on('error', onError);
    onReadable();
  });
}
