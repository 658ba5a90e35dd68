import type { Frame } from '@relaymesh/shared';

/**
 * What a mux Session needs from the connection beneath it, and nothing more: the mux
 * knows nothing of WebSocket, TCP or HTTP. Implementations:
 *  - `mux/stream-transport.ts`: any Node Duplex carrying a byte stream (TCP socket,
 *    in-memory pair), frames delimited by their headers (FrameDecoder);
 *  - `tunnel/ws-transport.ts`: one frame per binary WebSocket message.
 *
 * Contract:
 *  - `start(handlers)` is called once by the Session; after it, decoded frames arrive
 *    through `handlers.frame` in order. Handlers never throw.
 *  - A decoding violation or I/O failure arrives once through `handlers.error`; the
 *    transport is unusable afterwards and `handlers.close` follows.
 *  - `handlers.close` is called exactly once, whatever ended the transport.
 */
export interface FrameTransportHandlers {
  frame(frame: Frame): void;
  error(err: Error): void;
  /** `bufferedAmount` fell below the low-water mark after `send` returned false. */
  drain(): void;
  close(): void;
}

export interface FrameTransport {
  start(handlers: FrameTransportHandlers): void;
  /**
   * Bytes the transport may use in front of every frame for its own framing (a WebSocket
   * header, written in place so that header and frame leave as one buffer). `send`'s
   * buffer then starts with this many scratch bytes, followed by the frame. Absent: 0.
   */
  readonly headroom?: number;
  /**
   * Queues one whole encoded frame (header + payload), after `headroom` scratch bytes.
   * The transport may overwrite the whole buffer (e.g. mask it in place). Returns false
   * when the bytes queued in user space are above the transport's high-water mark; the
   * caller should stop sending DATA until `drain` (control frames may still be sent).
   *
   * `written`, if given, is called at most once, when the transport will never read the
   * buffer's bytes again (written to the kernel, or the write failed): the caller may then
   * reuse the memory. A transport that cannot tell (a Duplex that passes chunks by
   * reference, like the memory pair) never calls it, and the memory is not reused.
   */
  send(frame: Buffer, written?: () => void): boolean;
  /** Bytes accepted by `send` and not yet handed to the kernel. */
  readonly bufferedAmount: number;
  /** Batch the sends of one tick into one write (uncork on the next tick). */
  cork(): void;
  uncork(): void;
  /** Stop / restart reading from the peer (used when receive buffers hit their cap). */
  pause(): void;
  resume(): void;
  /** Flush queued frames, then close gracefully. Idempotent. */
  end(): void;
  /** Close at once, dropping queued frames. Idempotent. */
  destroy(err?: Error): void;
  /** For logs: "ws 127.0.0.1:4100", "tcp ...", "memory". */
  readonly description: string;
}
