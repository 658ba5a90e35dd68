import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { RelayError } from '../errors/base.ts';
import { PROTOCOL_VERSION } from './frame.ts';

/**
 * The authenticated hello that opens every tunnel (docs/protocol.md section 9). Pure
 * encode/decode and the HMAC proofs; the tunnel layer does the I/O and the deadline.
 *
 * ```
 * dialer (client)                                  listener (server)
 *   ws upgrade, Sec-WebSocket-Protocol: relaymux.1  -->
 *                                          <--  CHALLENGE {versions [min,max], nonceS, nodeIdS}
 *   HELLO {version, nonceC, mac_c, nodeIdC, region?} -->
 *                                          <--  WELCOME {version, mac_s}
 *   both start the mux Session (the dialer is the mux client)
 *
 *   mac_c = HMAC-SHA256(token, "relaymux-hello-c" || transcript)
 *   mac_s = HMAC-SHA256(token, "relaymux-hello-s" || transcript)
 *   transcript = min || max || version || nonceS || nonceC
 *                || lp(nodeIdS) || lp(nodeIdC) || lp(region)       (lp = 1-byte length prefix)
 * ```
 *
 * The token never crosses the wire. Each side's proof covers a nonce the other side just
 * chose (no replay), the two labels differ (a proof cannot be reflected back), and the
 * transcript covers the offered versions and both identities (no downgrade or identity
 * swap by a party without the token). Every field is length-prefixed so two different
 * transcripts never serialise to the same bytes.
 */

/** First byte of each hello message. Not 1 (the frame version) so that a frame is never
 * mistaken for a hello and vice versa. */
export const HelloKind = {
  CHALLENGE: 0xc1,
  HELLO: 0xc2,
  WELCOME: 0xc3,
} as const;
export type HelloKind = (typeof HelloKind)[keyof typeof HelloKind];

export const HELLO_NONCE_SIZE = 32;
/** HMAC-SHA256 output. */
export const HELLO_MAC_SIZE = 32;
/** No hello message may be larger; a bigger first message is ERR_PROTOCOL_BAD_HELLO. */
export const HELLO_MAX_SIZE = 1024;
/** Longest node id or region, in bytes. */
export const HELLO_MAX_ID_LENGTH = 128;
/** How long a side waits for the other's hello message before ERR_AUTH_TIMEOUT. */
export const DEFAULT_HELLO_TIMEOUT_MS = 10_000;

/** Inclusive range of frame protocol versions a node speaks. */
export interface VersionRange {
  min: number;
  max: number;
}

/** What this build speaks. */
export const SUPPORTED_VERSIONS: VersionRange = { min: PROTOCOL_VERSION, max: PROTOCOL_VERSION };

export interface Challenge {
  kind: typeof HelloKind.CHALLENGE;
  versions: VersionRange;
  nonce: Buffer;
  nodeId: string;
}

export interface Hello {
  kind: typeof HelloKind.HELLO;
  version: number;
  nonce: Buffer;
  mac: Buffer;
  nodeId: string;
  /** Empty string when the dialer did not say. */
  region: string;
}

export interface Welcome {
  kind: typeof HelloKind.WELCOME;
  version: number;
  mac: Buffer;
}

export type HelloMessage = Challenge | Hello | Welcome;

/** Printable ASCII without space: ids end up in logs, metrics labels and close reasons. */
const ID_PATTERN = /^[\x21-\x7e]*$/;

/** True when `id` may be used as a node id (non-empty) or region (may be empty). */
export function isValidHelloId(id: string, allowEmpty = false): boolean {
  if (id.length === 0) return allowEmpty;
  return id.length <= HELLO_MAX_ID_LENGTH && ID_PATTERN.test(id);
}

function assertId(what: string, id: string, allowEmpty: boolean): void {
  if (!isValidHelloId(id, allowEmpty)) {
    throw new RelayError(
      'ERR_CONFIG_INVALID',
      `${what} ${JSON.stringify(id.slice(0, 40))} must be 1-${HELLO_MAX_ID_LENGTH} printable ascii characters`,
    );
  }
}

function assertVersion(v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > 255) {
    throw new RelayError('ERR_CONFIG_INVALID', `protocol version ${v} must be an integer 0-255`);
  }
}

/** A fresh random nonce. */
export function newHelloNonce(): Buffer {
  return randomBytes(HELLO_NONCE_SIZE);
}

/** Encodes a CHALLENGE. Throws ERR_CONFIG_INVALID on a bad node id or version range. */
export function encodeChallenge(m: Omit<Challenge, 'kind'>): Buffer {
  assertVersion(m.versions.min);
  assertVersion(m.versions.max);
  assertId('node id', m.nodeId, false);
  const id = Buffer.from(m.nodeId, 'ascii');
  return Buffer.concat([
    Buffer.from([HelloKind.CHALLENGE, m.versions.min, m.versions.max]),
    fixed(m.nonce, HELLO_NONCE_SIZE),
    Buffer.from([id.length]),
    id,
  ]);
}

/** Encodes a HELLO. Throws ERR_CONFIG_INVALID on a bad node id, region or version. */
export function encodeHello(m: Omit<Hello, 'kind'>): Buffer {
  assertVersion(m.version);
  assertId('node id', m.nodeId, false);
  assertId('region', m.region, true);
  const id = Buffer.from(m.nodeId, 'ascii');
  const region = Buffer.from(m.region, 'ascii');
  return Buffer.concat([
    Buffer.from([HelloKind.HELLO, m.version]),
    fixed(m.nonce, HELLO_NONCE_SIZE),
    fixed(m.mac, HELLO_MAC_SIZE),
    Buffer.from([id.length]),
    id,
    Buffer.from([region.length]),
    region,
  ]);
}

/** Encodes a WELCOME. */
export function encodeWelcome(m: Omit<Welcome, 'kind'>): Buffer {
  assertVersion(m.version);
  return Buffer.concat([Buffer.from([HelloKind.WELCOME, m.version]), fixed(m.mac, HELLO_MAC_SIZE)]);
}

function fixed(b: Buffer, size: number): Buffer {
  if (b.length !== size) {
    throw new RelayError('ERR_INTERNAL', `hello field of ${b.length} bytes, expected ${size}`);
  }
  return b;
}

const badHello = (message: string, details?: Record<string, unknown>): RelayError =>
  new RelayError('ERR_PROTOCOL_BAD_HELLO', message, details ? { details } : {});

/** Bounds-checked reader over one message; every read past the end is recorded, not thrown. */
class Reader {
  readonly #buf: Buffer;
  #offset = 0;
  overrun = false;

  constructor(buf: Buffer) {
    this.#buf = buf;
  }

  get remaining(): number {
    return this.#buf.length - this.#offset;
  }

  u8(): number {
    if (this.remaining < 1) {
      this.overrun = true;
      return 0;
    }
    return this.#buf[this.#offset++]!;
  }

  bytes(n: number): Buffer {
    if (this.remaining < n) {
      this.overrun = true;
      return Buffer.alloc(n);
    }
    // A copy: the message buffer may be a view into a larger socket chunk.
    const out = Buffer.from(this.#buf.subarray(this.#offset, this.#offset + n));
    this.#offset += n;
    return out;
  }

  /** A 1-byte-length-prefixed id; undefined when it is not a valid id. */
  id(allowEmpty: boolean): string | undefined {
    const s = this.bytes(this.u8()).toString('latin1');
    return isValidHelloId(s, allowEmpty) ? s : undefined;
  }
}

/**
 * Decodes one hello message (one whole WebSocket message). Never throws: anything that is
 * not exactly one well-formed CHALLENGE, HELLO or WELCOME is ERR_PROTOCOL_BAD_HELLO.
 */
export function decodeHelloMessage(message: Buffer): HelloMessage | RelayError {
  if (message.length > HELLO_MAX_SIZE) {
    return badHello(`hello message of ${message.length} bytes exceeds ${HELLO_MAX_SIZE}`, {
      size: message.length,
    });
  }
  const r = new Reader(message);
  const kind = r.u8();
  let out: HelloMessage | undefined;
  if (kind === HelloKind.CHALLENGE) {
    const min = r.u8();
    const max = r.u8();
    const nonce = r.bytes(HELLO_NONCE_SIZE);
    const nodeId = r.id(false);
    if (nodeId !== undefined) {
      out = { kind, versions: { min, max }, nonce, nodeId };
    }
  } else if (kind === HelloKind.HELLO) {
    const version = r.u8();
    const nonce = r.bytes(HELLO_NONCE_SIZE);
    const mac = r.bytes(HELLO_MAC_SIZE);
    const nodeId = r.id(false);
    const region = r.id(true);
    if (nodeId !== undefined && region !== undefined) {
      out = { kind, version, nonce, mac, nodeId, region };
    }
  } else if (kind === HelloKind.WELCOME) {
    out = { kind, version: r.u8(), mac: r.bytes(HELLO_MAC_SIZE) };
  } else {
    return badHello(`unknown hello kind 0x${kind.toString(16)}`, { kind });
  }
  if (r.overrun) return badHello(`hello message of ${message.length} bytes is truncated`);
  if (out === undefined) return badHello('hello carries an invalid node id or region');
  if (r.remaining !== 0) {
    return badHello(`hello message has ${r.remaining} trailing bytes`, { size: message.length });
  }
  if (
    kind === HelloKind.CHALLENGE &&
    (out as Challenge).versions.min > (out as Challenge).versions.max
  ) {
    return badHello('challenge version range is empty');
  }
  return out;
}

/**
 * Highest version in both ranges, or ERR_PROTOCOL_BAD_VERSION naming what each side speaks.
 */
export function negotiateVersion(local: VersionRange, remote: VersionRange): number | RelayError {
  const v = Math.min(local.max, remote.max);
  if (v >= local.min && v >= remote.min) return v;
  return new RelayError(
    'ERR_PROTOCOL_BAD_VERSION',
    `no common protocol version: we speak ${local.min}-${local.max}, peer speaks ${remote.min}-${remote.max}`,
    { details: { local, remote } },
  );
}

/** Everything both proofs cover. */
export interface HelloTranscript {
  versions: VersionRange;
  version: number;
  serverNonce: Buffer;
  clientNonce: Buffer;
  serverNodeId: string;
  clientNodeId: string;
  region: string;
}

const LABEL_CLIENT = Buffer.from('relaymux-hello-c', 'ascii');
const LABEL_SERVER = Buffer.from('relaymux-hello-s', 'ascii');

function lp(s: string): Buffer {
  const b = Buffer.from(s, 'latin1');
  return Buffer.concat([Buffer.from([b.length]), b]);
}

function proof(label: Buffer, token: string | Buffer, t: HelloTranscript): Buffer {
  if (token.length === 0) throw new RelayError('ERR_CONFIG_INVALID', 'cluster token is empty');
  return createHmac('sha256', token)
    .update(label)
    .update(Buffer.from([t.versions.min & 0xff, t.versions.max & 0xff, t.version & 0xff]))
    .update(t.serverNonce)
    .update(t.clientNonce)
    .update(lp(t.serverNodeId))
    .update(lp(t.clientNodeId))
    .update(lp(t.region))
    .digest();
}

/** The dialer's proof (mac_c). Throws ERR_CONFIG_INVALID on an empty token. */
export function clientProof(token: string | Buffer, t: HelloTranscript): Buffer {
  return proof(LABEL_CLIENT, token, t);
}

/** The listener's proof (mac_s). Throws ERR_CONFIG_INVALID on an empty token. */
export function serverProof(token: string | Buffer, t: HelloTranscript): Buffer {
  return proof(LABEL_SERVER, token, t);
}

/** Constant-time comparison of a received proof with the expected one. */
export function proofMatches(expected: Buffer, received: Buffer): boolean {
  return expected.length === received.length && timingSafeEqual(expected, received);
}
