import type { ServerResponse } from 'node:http';
import { F, type Logger, WireCode } from '@relaymesh/shared';
import type { EntryConnector, EntryStream } from '../entry-connector.ts';
import type { HeaderPairs, RequestHead, ResponseHead } from '../open-header.ts';
import { resetStream } from '../splice.ts';
import type { Origin } from '../types.ts';
import { setField } from './headers.ts';
import type { ParkedSources } from './parked-sources.ts';
import { type StalledResponse, StallWatch } from './stall-watch.ts';

/** Resumes of one response at most (each over a fresh path). */
export const MAX_RESUMES = 3;

/** The value of field `name` (case-insensitive), the first one when repeated. */
export function fieldOf(pairs: HeaderPairs, name: string): string | undefined {
  const lower = name.toLowerCase();
  return pairs.find(([n]) => n.toLowerCase() === lower)?.[1];
}

/** What the entry needs to fetch the rest of a response with a Range request. */
export interface ResumePlan {
  origin: Origin;
  /** The original request head (GET; a single byte range when the response is a 206). */
  head: RequestHead;
  /** Content-Length of the response (its body bytes). */
  total: number;
  /** Position of the response's first body byte in the representation (0 for a 200). */
  offset: number;
  /** Length of the whole representation: Content-Length of a 200, the `/size` of a 206 (undefined for `*`). */
  size: number | undefined;
  /** Ask for `bytes=N-` (a 200, to the end) or `bytes=N-last` (a 206, the rest of its range). */
  closedRange: boolean;
  /** If-Range value: a strong ETag, else Last-Modified; undefined: none (riskier, 200 only). */
  validator: string | undefined;
}

/**
 * The body length the client was promised, or undefined when it was not (chunked, or no
 * body by definition: HEAD, 1xx, 204, 304).
 */
export function promisedLength(method: string, head: ResponseHead): number | undefined {
  if (method === 'HEAD' || head.status < 200 || head.status === 204 || head.status === 304) {
    return undefined;
  }
  const cl = fieldOf(head.headers, 'content-length');
  if (cl === undefined || !/^\d{1,15}$/.test(cl)) return undefined;
  return Number(cl);
}

/**
 * A resume plan when the response can be continued with a Range request: a GET answered
 * 200 with a Content-Length, or 206 to a single byte range (see {@link partialPlan}), a
 * body not content-coded per request, and no `Accept-Ranges: none`. The origin need not
 * announce `Accept-Ranges: bytes`: the 206 and its Content-Range are checked before a
 * single resumed byte is used.
 */
export function resumePlanFor(
  origin: Origin,
  req: RequestHead,
  res: ResponseHead,
): ResumePlan | undefined {
  if (req.method !== 'GET') return undefined;
  const total = promisedLength(req.method, res);
  if (total === undefined) return undefined;
  if (fieldOf(res.headers, 'accept-ranges')?.toLowerCase() === 'none') return undefined;
  if (res.status === 206) return partialPlan(origin, req, res, total);
  if (res.status !== 200 || fieldOf(req.headers, 'range') !== undefined) return undefined;
  const etag = fieldOf(res.headers, 'etag');
  const strong = etag !== undefined && !etag.startsWith('W/') ? etag : undefined;
  return {
    origin,
    head: req,
    total,
    offset: 0,
    size: total,
    closedRange: false,
    validator: strong ?? fieldOf(res.headers, 'last-modified'),
  };
}

/** `Content-Range: bytes first-last/size` (size may be `*`). */
const CONTENT_RANGE = /^bytes (\d{1,15})-(\d{1,15})\/(\d{1,15}|\*)$/;

/**
 * A 206 is resumable when the client asked for ONE byte range (a multipart/byteranges
 * answer to several ranges is not), the 206 says which bytes it carries (a Content-Range
 * matching its Content-Length), and it has a strong validator for If-Range: a strong
 * ETag, or, with no ETag at all, Last-Modified (RFC 9110 §13.1.5: never a weak ETag, never
 * a date when there is an ETag). Without one, a resumed range could splice two versions.
 */
function partialPlan(
  origin: Origin,
  req: RequestHead,
  res: ResponseHead,
  total: number,
): ResumePlan | undefined {
  const range = fieldOf(req.headers, 'range');
  if (range === undefined || !/^bytes=\s*(\d*)\s*-\s*(\d*)\s*$/i.test(range)) return undefined;
  const m = CONTENT_RANGE.exec(fieldOf(res.headers, 'content-range') ?? '');
  if (!m) return undefined;
  const first = Number(m[1]);
  const last = Number(m[2]);
  if (last < first || last - first + 1 !== total) return undefined;
  const etag = fieldOf(res.headers, 'etag');
  if (etag?.startsWith('W/')) return undefined;
  const validator = etag ?? fieldOf(res.headers, 'last-modified');
  if (validator === undefined) return undefined;
  const size = m[3] === '*' ? undefined : Number(m[3]);
  return { origin, head: req, total, offset: first, size, closedRange: true, validator };
}

/** The 206 to a resume carries exactly the rest we asked for: `bytes from-last/size`. */
function rangeMatches(head: ResponseHead, plan: ResumePlan, from: number): boolean {
  if (head.status !== 206) return false;
  const m = CONTENT_RANGE.exec(fieldOf(head.headers, 'content-range') ?? '');
  return (
    m !== null &&
    Number(m[1]) === plan.offset + from &&
    Number(m[2]) === plan.offset + plan.total - 1 &&
    (plan.size === undefined || m[3] === String(plan.size))
  );
}

type PumpEnd = 'end' | 'broken' | 'client-gone' | 'client-stalled' | 'parked' | 'overflow';

/** When the client's socket last became full and stayed so (undefined: it is not full). */
interface Stall {
  at: number | undefined;
  /** The client has drained its socket once during this response (it reads). */
  hasRead: boolean;
  /** Slices handed to the socket and not written yet (see pump's write()). */
  slicesOut: number;
  /**
   * The write the kernel refused was a slice: the stall ends when the slices are written,
   * which a slice that did not fill the socket's buffer does not announce with 'drain'.
   */
  onSlices: boolean;
  /** Ends the stall when the slices are written: the pump's, or a parked response's wait. */
  wake: (() => void) | undefined;
  /** The write callback of every slice (one per response: a parked client keeps no pump). */
  readonly sliceWritten: (err?: Error | null) => void;
}

function newStall(): Stall {
  const stall: Stall = {
    at: undefined,
    hasRead: false,
    slicesOut: 0,
    onSlices: false,
    wake: undefined,
    sliceWritten: (err) => {
      stall.slicesOut -= 1;
      if (stall.slicesOut === 0 && stall.onSlices && !err) stall.wake?.();
    },
  };
  return stall;
}

/** The client took what it had been refused: the stall is over. */
function stallEnded(stall: Stall): void {
  stall.at = undefined;
  stall.hasRead = true;
  stall.onSlices = false;
}

/** How long a stall may last before the pump gives up: reset, or park. 0: never. */
interface StallLimits {
  sendTimeoutMs: number;
  /** Parks stalled responses (parkAfterMs 0: none). */
  watch: StallWatch;
  /** Whether this response can be resumed once parked (asked only when a stall begins). */
  canPark: () => boolean;
}

/** Slices a chunk is cut into while the stall watch is crowded and the client has not drained its socket once (see {@link pump}). */
export const FIRST_SLICE_BYTES = 16 * 1024;
/** A response's first bytes written in slices (to a client that has not drained yet). */
export const SLICED_PREFIX_BYTES = 1024 * 1024;

/**
 * Copies `stream` into `res` with backpressure (the stream pauses while the client's
 * socket is full, so one slow client holds at most its socket buffer plus one stream
 * window). Counts bytes into `count.n`: the bytes handed to `res`; never writes beyond
 * `limit`. While the client's socket stays full (no 'drain'), ends with 'parked' when the
 * entry's {@link StallWatch} parks it and with 'client-stalled' after `sendTimeoutMs`
 * counted from `stall.at` (0: never).
 *
 * While the entry's stall watch is crowded (many clients that do not read) and the client
 * has not drained its socket once during the response, the body's bytes past its first
 * {@link FIRST_SLICE_BYTES} (a small body goes as it is) and within its first
 * {@link SLICED_PREFIX_BYTES} go to `res` as copies of {@link FIRST_SLICE_BYTES} at most,
 * each flushed at once, and the rest of a chunk waits here when one is refused. A socket
 * keeps the buffer of a write it could not finish until the client reads: a client that
 * never reads would otherwise keep a whole upstream chunk (64 KiB) at the entry for as long
 * as it stays connected, parked or not. With slices it keeps one; the rest of the chunk is
 * let go when the response is parked (it was not handed over, so the resume fetches it
 * again). Not always: a slice costs a copy and a write of its own (a 512 KiB response
 * written in slices to a loopback client took ~1.4 ms of CPU against ~1.1 whole).
 */
function pump(
  stream: EntryStream['stream'],
  res: ServerResponse,
  count: { n: number },
  limit: number,
  stall: Stall,
  limits: StallLimits,
): Promise<PumpEnd> {
  return new Promise((resolve) => {
    let done = false;
    // One send-timeout timer per pump, not one per stall: a slow client fills its socket at
    // every drain. The timer checks when the current stall began and re-arms for the rest.
    // Parking is the entry's stall watch's (one timer for all its stalls).
    let timer: NodeJS.Timeout | undefined;
    // This pump in the entry's stall watch while its stall lasts (undefined: not watched).
    let watched: StalledResponse | undefined;
    // Every body byte already handed to the client socket: nothing left to let go of (a
    // resume would ask for an empty range), so only the send timeout applies.
    const parkable = () => limits.watch.parkAfterMs > 0 && count.n < limit && limits.canPark();
    const checkStall = () => {
      timer = undefined;
      if (stall.at === undefined) return;
      const stalled = performance.now() - stall.at;
      if (stalled >= limits.sendTimeoutMs) return finish('client-stalled');
      arm();
    };
    const arm = () => {
      if (timer || stall.at === undefined || limits.sendTimeoutMs === 0) return;
      // A deadline already past fires at once (checkStall ends the pump then).
      const next = stall.at + limits.sendTimeoutMs - performance.now();
      timer = setTimeout(checkStall, Math.max(0, next));
    };
    const onStall = (at: number) => {
      arm();
      if (watched || !parkable()) return;
      watched = { at, hasRead: stall.hasRead, park: () => finish('parked') };
      limits.watch.add(watched);
    };
    const unwatch = () => {
      if (watched) limits.watch.delete(watched);
      watched = undefined;
    };
    const finish = (how: PumpEnd) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      unwatch();
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('close', onClose);
      res.off('drain', onDrain);
      res.off('close', onResClose);
      stall.wake = undefined;
      rest = undefined; // not handed over: a resume fetches it again
      resolve(how);
    };
    // Bytes of a chunk not handed to `res` yet (a slice was refused); the stream is paused
    // while there are. `ended`: the stream ended meanwhile.
    let rest: Buffer | undefined;
    let ended = false;
    /** Hands `chunk` to `res`; false when the socket is full (the unwritten part in `rest`). */
    const write = (chunk: Buffer): boolean => {
      let from = 0;
      const socket = res.socket;
      while (
        socket &&
        !stall.hasRead &&
        count.n < SLICED_PREFIX_BYTES &&
        from < chunk.length &&
        // A body's first slice goes as it is: small responses are never sliced.
        count.n + chunk.length - from > FIRST_SLICE_BYTES &&
        limits.watch.crowded
      ) {
        const to = Math.min(from + FIRST_SLICE_BYTES, chunk.length);
        count.n += to - from;
        stall.slicesOut += 1;
        // A copy: a view would keep the whole chunk alive. Its return value means little
        // here: http corks the socket until the next tick, so a 16 KiB write always "fills"
        // it. Uncorked at once, the socket says what the kernel did not take.
        res.write(Buffer.from(chunk.subarray(from, to)), stall.sliceWritten);
        from = to;
        socket.uncork();
        if (socket.writableLength > 0) {
          if (from < chunk.length) rest = chunk.subarray(from);
          stall.onSlices = true;
          return false;
        }
      }
      if (from === chunk.length) return true;
      const tail = from === 0 ? chunk : chunk.subarray(from);
      count.n += tail.length;
      return res.write(tail);
    };
    const onFull = () => {
      stream.pause();
      if (stall.at === undefined) {
        stall.at = performance.now();
        onStall(stall.at);
      }
    };
    const onData = (chunk: Buffer) => {
      if (count.n + chunk.length > limit) return finish('overflow');
      if (!write(chunk)) onFull();
    };
    // The socket took everything that was refused: the client reads. Comes as 'drain' or,
    // for a slice written without filling the socket's buffer, as the slice's callback. A
    // 'drain' while not stalled is a sliced write's that the kernel took at once.
    const onDrain = () => {
      if (stall.at === undefined) return;
      stallEnded(stall);
      unwatch();
      if (rest) {
        const r = rest;
        rest = undefined;
        if (!write(r)) return onFull();
      }
      if (ended) finish('end');
      else stream.resume();
    };
    const onEnd = () => {
      if (rest) ended = true;
      else finish('end');
    };
    const onClose = () => {
      if (!stream.readableEnded) finish('broken');
      else if (rest) ended = true;
      else finish('end');
    };
    const onResClose = () => finish('client-gone');
    // `on`, not `once`: finish() removes every listener (no once-wrappers per body).
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('close', onClose);
    res.on('drain', onDrain);
    res.on('close', onResClose);
    stall.wake = onDrain;
    if (stream.readableEnded) finish('end');
    else if (stream.destroyed) finish('broken');
    else if (stall.at !== undefined) {
      // Resumed while the socket is still full (after a broken path; parks resume on
      // 'drain'). The watch takes stalls in the order they begin: this one counts from now
      // for parking; the send timeout still counts from its start.
      stream.pause();
      onStall(performance.now());
    }
  });
}

/**
 * A parked response waits here, holding no stream, until the client's socket drains
 * ('drain'), the client goes ('gone'), or the send timeout counted from the stall's start
 * passes ('timeout').
 */
function waitForDrain(
  res: ServerResponse,
  stall: Stall,
  sendTimeoutMs: number,
): Promise<'drain' | 'gone' | 'timeout'> {
  if (res.destroyed) return Promise.resolve('gone');
  // A slice refused without filling the socket's buffer leaves no 'drain' to wait for:
  // `stall.wake` comes when it is written (unless it already was).
  if (!res.writableNeedDrain && !(stall.onSlices && stall.slicesOut > 0)) {
    stallEnded(stall);
    return Promise.resolve('drain');
  }
  return new Promise((resolve) => {
    const left =
      sendTimeoutMs > 0 ? (stall.at ?? performance.now()) + sendTimeoutMs - performance.now() : 0;
    const timer =
      sendTimeoutMs > 0 ? setTimeout(() => end('timeout'), Math.max(0, left)) : undefined;
    const end = (how: 'drain' | 'gone' | 'timeout') => {
      clearTimeout(timer);
      stall.wake = undefined;
      res.off('drain', onDrain);
      res.off('close', onClose);
      if (how === 'drain') stallEnded(stall);
      resolve(how);
    };
    const onDrain = () => end('drain');
    const onClose = () => end('gone');
    res.once('drain', onDrain);
    res.once('close', onClose);
    stall.wake = onDrain;
  });
}

export interface BodyRelayContext {
  connector: EntryConnector;
  log: Logger;
  /** Close a client connection that accepted no bytes for this long (0: never). @default 0 */
  sendTimeoutMs?: number;
  /**
   * The entry's stall watch, shared by all its responses: it parks a response whose client
   * accepted no bytes for its `parkAfterMs` (earlier when many are stalled at once): lets go
   * of its stream (and so of the origin connection and the socket buffers on that side),
   * keeps the client connection, and fetches the rest with a Range request once the client
   * reads again. Only responses that can be resumed with a validator (strong ETag or
   * Last-Modified). @default none: never parks
   */
  stallWatch?: StallWatch;
  /** Counts parked responses per client source address while they wait. @default none */
  parkedSources?: ParkedSources;
}

/** The watch of a context without one: `parkAfterMs` 0, so nothing is ever added to it. */
const NO_PARKING = new StallWatch({ parkAfterMs: 0 });

/** Resets a client connection (RST): the kernel drops what it still holds for the client. */
function resetClient(res: ServerResponse): void {
  // RST, not FIN: a closed socket would keep its unsent bytes in the kernel (an orphan)
  // until the client read them, which is the memory the send timeout exists to free
  // (nginx: reset_timedout_connection).
  if (res.socket) res.socket.resetAndDestroy();
  else res.destroy();
}

/**
 * Streams the response body to the client. When the path breaks mid-body (or the body
 * ends short of its Content-Length) and the plan allows (`planFor`, asked only then: most
 * bodies never break), fetches the rest with
 * `Range: bytes=N-` (the rest of the range, for a 206) and If-Range over another path
 * (the same one when there is no other), at most {@link MAX_RESUMES} times;
 * the client gets one intact body. Otherwise the client connection is destroyed, so a
 * short body is never passed off as complete (Content-Length unmet, or no last chunk).
 * A client that stops reading is parked by the entry's `stallWatch` (resumable responses
 * only) and reset after `sendTimeoutMs`.
 */
export async function relayBody(
  ctx: BodyRelayContext,
  res: ServerResponse,
  first: EntryStream,
  expected: number | undefined,
  planFor: () => ResumePlan | undefined,
): Promise<void> {
  const count = { n: 0 };
  const stall = newStall();
  const sendTimeoutMs = ctx.sendTimeoutMs ?? 0;
  // The resume plan is built once, and only when needed: a stall (parking needs a plan
  // with a validator) or a broken path. Most bodies need neither.
  let plan: ResumePlan | undefined;
  let planned = false;
  const getPlan = () => {
    if (!planned) {
      planned = true;
      plan = planFor();
    }
    return plan;
  };
  const limits: StallLimits = {
    sendTimeoutMs,
    watch: ctx.stallWatch ?? NO_PARKING,
    canPark: () => getPlan()?.validator !== undefined,
  };
  let current = first;
  let parks = 0;
  for (let resumes = 0; ; resumes++) {
    const limit = expected ?? Number.POSITIVE_INFINITY;
    const how = await pump(current.stream, res, count, limit, stall, limits);
    if (how === 'client-gone') return resetStream(current.stream, WireCode.CANCEL);
    if (how === 'client-stalled') {
      resetStream(current.stream, WireCode.CANCEL);
      ctx.log.info(
        { reqId: first.id, bytes: count.n, sendTimeoutMs, parks },
        'client accepted no bytes within the send timeout: connection reset',
      );
      return resetClient(res);
    }
    const parkPlan = how === 'parked' ? getPlan() : undefined;
    if (parkPlan) {
      resetStream(current.stream, WireCode.CANCEL);
      // Counted while it waits; the address was read (and cached) when the request came.
      const source = ctx.parkedSources ? res.socket?.remoteAddress : undefined;
      if (source !== undefined) ctx.parkedSources?.add(source);
      const woke = await waitForDrain(res, stall, sendTimeoutMs);
      if (source !== undefined) ctx.parkedSources?.delete(source);
      if (woke === 'gone') return;
      if (woke === 'timeout') {
        ctx.log.info(
          { reqId: first.id, bytes: count.n, sendTimeoutMs, parks },
          'client accepted no bytes within the send timeout: connection reset',
        );
        return resetClient(res);
      }
      parks += 1;
      resumes -= 1; // a park is not a broken path: it does not use up a resume
      const next = await resume(ctx, parkPlan, current, count.n, false);
      if (!next) {
        ctx.log.warn(
          { reqId: first.id, bytes: count.n },
          'parked response not resumed: client connection aborted',
        );
        res.destroy();
        return;
      }
      current = next;
      continue;
    }
    if (how === 'end' && (expected === undefined || count.n === expected)) {
      res.end();
      return;
    }
    resetStream(current.stream, WireCode.CANCEL);
    if (how === 'broken') ctx.connector.pathBroke(current);
    const log = { reqId: first.id, [F.PATH]: current.path.join(','), bytes: count.n, expected };
    const resumePlan =
      how !== 'overflow' && resumes < MAX_RESUMES && !res.destroyed ? getPlan() : undefined;
    const next = resumePlan ? await resume(ctx, resumePlan, current, count.n, true) : undefined;
    if (!next) {
      ctx.log.warn({ ...log, how }, 'response body broken: client connection aborted');
      res.destroy();
      return;
    }
    ctx.log.info({ ...log, next: next.path.join(',') }, 'response body resumed with a range');
    current = next;
  }
}

/**
 * Opens `Range: bytes=from-`: over another path when `avoid` (the previous one broke; any
 * path when there is no other), else over the best path.
 */
async function resume(
  ctx: BodyRelayContext,
  plan: ResumePlan,
  broken: EntryStream,
  from: number,
  avoid: boolean,
): Promise<EntryStream | undefined> {
  const headers: HeaderPairs = plan.head.headers.map(([n, v]) => [n, v]);
  const next = plan.offset + from;
  const last = plan.offset + plan.total - 1;
  setField(headers, 'Range', plan.closedRange ? `bytes=${next}-${last}` : `bytes=${next}-`);
  if (plan.validator !== undefined) setField(headers, 'If-Range', plan.validator);
  const head: RequestHead = { ...plan.head, headers, bodyLength: 0 };
  const base = { origin: plan.origin, kind: 'http' as const, head, id: broken.id };
  let entry: EntryStream | undefined;
  try {
    if (avoid) entry = ctx.connector.open({ ...base, avoid: [broken.path] });
  } catch {}
  try {
    entry ??= ctx.connector.open(base);
  } catch {
    return undefined;
  }
  entry.stream.on('error', () => {});
  entry.stream.end();
  const answer = await ctx.connector.readResponseHead(entry.stream);
  if ('v' in answer && !answer.error && rangeMatches(answer, plan, from)) return entry;
  resetStream(entry.stream, WireCode.CANCEL);
  ctx.log.warn(
    { reqId: broken.id, status: 'v' in answer ? answer.status : undefined, from },
    'range resume refused',
  );
  return undefined;
}
