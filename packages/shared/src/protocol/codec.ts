import { RelayError } from '../errors/base.ts';
import {
  ALL_FLAGS,
  FRAME_HEADER_SIZE,
  type Frame,
  FrameType,
  MAX_FRAME_PAYLOAD,
  PROTOCOL_VERSION,
} from './frame.ts';

/**
 * Pure encode/decode of relaymux frames: no I/O, no timers. Decoding never throws; it
 * returns a RelayError (code ERR_PROTOCOL_*) for the caller to act on (close the tunnel).
 */

const EMPTY = Buffer.alloc(0);

/** Writes a 12-byte header into `target` at `offset`. */
export function writeHeader(
  target: Buffer,
  offset: number,
  type: FrameType,
  flags: number,
  streamId: number,
  length: number,
): void {
  target[offset] = PROTOCOL_VERSION;
  target[offset + 1] = type;
  target.writeUInt16BE(flags, offset + 2);
  target.writeUInt32BE(streamId >>> 0, offset + 4);
  target.writeUInt32BE(length >>> 0, offset + 8);
}

/**
 * Encodes one frame into a single buffer (one ws message). For DATA, `length` must equal
 * `payload.length`; for other types pass the field value and no payload.
 */
export function encodeFrame(
  type: FrameType,
  flags: number,
  streamId: number,
  length: number,
  payload?: Buffer,
): Buffer {
  const size = payload === undefined ? 0 : payload.length;
  const out = Buffer.allocUnsafe(FRAME_HEADER_SIZE + size);
  writeHeader(out, 0, type, flags, streamId, length);
  if (payload !== undefined && size > 0) payload.copy(out, FRAME_HEADER_SIZE);
  return out;
}

/** Checks the header fields that can be judged without session state. */
function checkHeader(buf: Buffer, offset: number, maxPayload: number): RelayError | undefined {
  const version = buf[offset]!;
  if (version !== PROTOCOL_VERSION) {
    return new RelayError(
      'ERR_PROTOCOL_BAD_VERSION',
      `frame version ${version}, expected ${PROTOCOL_VERSION}`,
      {
        details: { version },
      },
    );
  }
  const type = buf[offset + 1]!;
  if (type > FrameType.GO_AWAY) {
    return new RelayError('ERR_PROTOCOL_BAD_TYPE', `unknown frame type ${type}`, {
      details: { type },
    });
  }
  const flags = buf.readUInt16BE(offset + 2);
  if ((flags & ~ALL_FLAGS) !== 0) {
    return new RelayError('ERR_PROTOCOL_BAD_FLAGS', `unknown flag bits 0x${flags.toString(16)}`, {
      details: { flags },
    });
  }
  const streamId = buf.readUInt32BE(offset + 4);
  if ((type === FrameType.PING || type === FrameType.GO_AWAY) && streamId !== 0) {
    return new RelayError(
      'ERR_PROTOCOL_BAD_STREAM_ID',
      `${type === FrameType.PING ? 'PING' : 'GO_AWAY'} on stream ${streamId}, must be 0`,
      {
        details: { streamId },
      },
    );
  }
  if ((type === FrameType.DATA || type === FrameType.WINDOW_UPDATE) && streamId === 0) {
    return new RelayError('ERR_PROTOCOL_BAD_STREAM_ID', 'DATA or WINDOW_UPDATE on stream 0', {
      details: { streamId },
    });
  }
  if (type === FrameType.DATA) {
    const length = buf.readUInt32BE(offset + 8);
    if (length > maxPayload) {
      return new RelayError(
        'ERR_PROTOCOL_FRAME_TOO_LARGE',
        `frame length ${length} exceeds max ${maxPayload}`,
        {
          details: { length, max: maxPayload },
        },
      );
    }
  }
  return undefined;
}

function readFrame(buf: Buffer, offset: number, payload: Buffer): Frame {
  return {
    version: buf[offset]!,
    type: buf[offset + 1] as FrameType,
    flags: buf.readUInt16BE(offset + 2),
    streamId: buf.readUInt32BE(offset + 4),
    length: buf.readUInt32BE(offset + 8),
    payload,
  };
}

/**
 * Decodes exactly one frame from one whole message (the WebSocket transport: one frame per
 * message). The payload is a view into `message`. A message that is shorter or longer than
 * its header says is ERR_PROTOCOL_TRUNCATED.
 */
export function decodeFrame(message: Buffer, maxPayload = MAX_FRAME_PAYLOAD): Frame | RelayError {
  if (message.length < FRAME_HEADER_SIZE) {
    return new RelayError(
      'ERR_PROTOCOL_TRUNCATED',
      `message of ${message.length} bytes is shorter than a frame header`,
    );
  }
  const bad = checkHeader(message, 0, maxPayload);
  if (bad) return bad;
  const type = message[1]!;
  const bodyLength = type === FrameType.DATA ? message.readUInt32BE(8) : 0;
  if (message.length !== FRAME_HEADER_SIZE + bodyLength) {
    return new RelayError(
      'ERR_PROTOCOL_TRUNCATED',
      `message of ${message.length} bytes, frame header says ${FRAME_HEADER_SIZE + bodyLength}`,
    );
  }
  return readFrame(message, 0, bodyLength === 0 ? EMPTY : message.subarray(FRAME_HEADER_SIZE));
}

/**
 * Incremental decoder for byte-stream transports (TCP, in-memory pipes): push chunks,
 * get whole frames. Two states, HEADER and PAYLOAD. Buffers at most one frame
 * (header + {@link MAX_FRAME_PAYLOAD}); after an error it stays failed.
 */
export class FrameDecoder {
  readonly #maxPayload: number;
  #chunks: Buffer[] = [];
  #buffered = 0;
  #failed: RelayError | undefined;

  constructor(maxPayload = MAX_FRAME_PAYLOAD) {
    this.#maxPayload = maxPayload;
  }

  /** Bytes held that do not yet form a whole frame. */
  get buffered(): number {
    return this.#buffered;
  }

  /**
   * Adds a chunk and returns every frame now complete. On a violation the returned array
   * ends with the RelayError and later pushes return it again.
   */
  push(chunk: Buffer): Array<Frame | RelayError> {
    if (this.#failed) return [this.#failed];
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    const out: Array<Frame | RelayError> = [];
    for (;;) {
      if (this.#buffered < FRAME_HEADER_SIZE) return out;
      const head = this.#peek(FRAME_HEADER_SIZE);
      const bad = checkHeader(head, 0, this.#maxPayload);
      if (bad) {
        this.#failed = bad;
        out.push(bad);
        return out;
      }
      const bodyLength = head[1] === FrameType.DATA ? head.readUInt32BE(8) : 0;
      if (this.#buffered < FRAME_HEADER_SIZE + bodyLength) return out;
      const whole = this.#take(FRAME_HEADER_SIZE + bodyLength);
      out.push(readFrame(whole, 0, bodyLength === 0 ? EMPTY : whole.subarray(FRAME_HEADER_SIZE)));
    }
  }

  /** Call at end of input: bytes left over mean the peer stopped inside a frame. */
  end(): RelayError | undefined {
    if (this.#failed) return this.#failed;
    if (this.#buffered > 0) {
      return new RelayError(
        'ERR_PROTOCOL_TRUNCATED',
        `stream ended inside a frame (${this.#buffered} bytes left)`,
      );
    }
    return undefined;
  }

  /** First `n` bytes without consuming them (copies only when they span chunks). */
  #peek(n: number): Buffer {
    const first = this.#chunks[0]!;
    if (first.length >= n) return first;
    return Buffer.concat(
      this.#chunks,
      Math.min(this.#buffered, Math.max(n, first.length)),
    ).subarray(0, n);
  }

  /** Consumes `n` bytes (a view when they sit in one chunk). */
  #take(n: number): Buffer {
    this.#buffered -= n;
    const first = this.#chunks[0]!;
    if (first.length === n) {
      this.#chunks.shift();
      return first;
    }
    if (first.length > n) {
      this.#chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.#chunks[0]!;
      const want = n - filled;
      if (c.length <= want) {
        c.copy(out, filled);
        filled += c.length;
        this.#chunks.shift();
      } else {
        c.copy(out, filled, 0, want);
        this.#chunks[0] = c.subarray(want);
        filled += want;
      }
    }
    return out;
  }
}
