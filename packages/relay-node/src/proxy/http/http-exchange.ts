import type { IncomingMessage, ServerResponse } from 'node:http';
import { F, type Logger, WireCode } from '@relaymesh/shared';
import {
  type EntryConnector,
  type EntryFailure,
  type EntryStream,
  exitOf,
  type OpenRequest,
} from '../entry-connector.ts';
import type { HeaderPairs, RequestHead, ResponseHead } from '../open-header.ts';
import { resetStream } from '../splice.ts';
import type { Origin, OriginCatalog } from '../types.ts';
import { promisedLength, relayBody, resumePlanFor } from './body-relay.ts';
import {
  addForwarded,
  appendField,
  bareHost,
  endToEndPairs,
  setField,
  toOutgoing,
} from './headers.ts';
import type { ParkedSources } from './parked-sources.ts';
import { PATH_HEADER, sendError } from './responses.ts';
import { bufferBody, exitCouldNotConnect, isIdempotent, mayTryAgain } from './retry.ts';
import type { StallWatch } from './stall-watch.ts';

/** Where a request goes: the authority that names the origin and the origin-form target. */
export interface RequestTarget {
  authority: string;
  target: string;
  form: 'origin' | 'absolute';
}

/**
 * Reverse proxy (origin-form + Host) or forward proxy (absolute-form `http://`). https in
 * absolute form is refused: clients must use CONNECT so TLS stays end to end.
 */
export function parseTarget(req: IncomingMessage): RequestTarget | EntryFailure {
  const url = req.url ?? '';
  if (url.startsWith('/')) {
    const host = req.headers.host;
    if (!host) return badRequest('request has no host header');
    return { authority: host, target: url, form: 'origin' };
  }
  if (/^http:\/\//i.test(url)) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return badRequest('absolute-form target is not a valid url');
    }
    return {
      authority: parsed.host,
      target: `${parsed.pathname}${parsed.search}`,
      form: 'absolute',
    };
  }
  if (/^https:\/\//i.test(url)) return badRequest('https urls must be proxied with CONNECT');
  return badRequest('request target is neither origin-form nor http absolute-form');
}

function badRequest(message: string): EntryFailure {
  return { status: 400, code: 'ERR_PROXY_BAD_REQUEST', message };
}

export function unknownHost(host: string): EntryFailure {
  return {
    status: 421,
    code: 'ERR_PROXY_UNKNOWN_HOST',
    message: `host ${host} is not a declared origin`,
  };
}

/** Finds the declared origin for an authority, or the 421 answer. */
export function originFor(catalog: OriginCatalog, authority: string): Origin | EntryFailure {
  const host = bareHost(authority);
  return catalog.byHost(host) ?? unknownHost(host);
}

/** Request body length from the (already strictly parsed) framing headers. */
function bodyLengthOf(req: IncomingMessage): number {
  if (req.headers['transfer-encoding'] !== undefined) return -1;
  const cl = req.headers['content-length'];
  return cl === undefined ? 0 : Number(cl);
}

/** The request head sent to the exit: end-to-end headers, Host, X-Forwarded-*, Via. */
export function requestHeadFor(
  req: IncomingMessage,
  t: RequestTarget,
  nodeId: string,
  keep?: ReadonlySet<string>,
): RequestHead {
  const headers = endToEndPairs(req.rawHeaders, keep);
  setField(headers, 'Host', t.authority);
  addForwarded(headers, {
    clientIp: req.socket.remoteAddress ?? 'unknown',
    host: t.authority,
    nodeId,
  });
  return { method: req.method ?? 'GET', target: t.target, headers, bodyLength: bodyLengthOf(req) };
}

export interface ExchangeContext {
  connector: EntryConnector;
  catalog: OriginCatalog;
  nodeId: string;
  debugHeaders: boolean;
  log: Logger;
  /** See EntryServerOptions.sendTimeoutMs. */
  sendTimeoutMs: number;
  /** The entry's stalled responses (EntryServerOptions.parkAfterMs, maxHeldStalls). */
  stallWatch: StallWatch;
  /** Parked responses per client address (EntryServerOptions.parkedPerSourceWarn). */
  parkedSources: ParkedSources;
}

function fail(
  ctx: ExchangeContext,
  req: IncomingMessage,
  res: ServerResponse,
  f: EntryFailure,
  path?: string[],
): void {
  ctx.log.warn(
    {
      status: f.status,
      [F.CODE]: f.code,
      reason: f.message,
      method: req.method,
      url: req.url,
      [F.PATH]: path?.join(','),
    },
    'request failed',
  );
  sendError(res, f, ctx.debugHeaders ? path : undefined);
}

/** One try of a request: the stream and path it took, and what came back before the body. */
interface Attempt {
  entry: EntryStream;
  answer: ResponseHead | EntryFailure;
}

/**
 * Opens a stream for the request and sends the body: the buffered `body` when it is
 * replayable, else the client's body streamed (`null`). Resolves with the RESPONSE HEAD or
 * the failure; an EntryFailure alone when no stream could be opened.
 */
async function attempt(
  ctx: ExchangeContext,
  req: IncomingMessage,
  res: ServerResponse,
  open: OpenRequest,
  body: Buffer | null,
): Promise<Attempt | EntryFailure> {
  let entry: EntryStream;
  try {
    entry = ctx.connector.open(open);
  } catch (err) {
    return { status: 502, code: 'ERR_ROUTE_NONE', message: (err as Error).message };
  }
  const { stream } = entry;
  stream.on('error', () => {}); // surfaced through 'close' and resetCode
  res.once('close', () => {
    if (!res.writableFinished) resetStream(stream, WireCode.CANCEL);
  });
  if (body === null) {
    req.once('error', () => resetStream(stream, WireCode.CANCEL));
    req.pipe(stream);
  } else if (body.length === 0) {
    stream.end(); // no empty write through the Writable machinery (most requests)
  } else {
    stream.end(body);
  }
  return { entry, answer: await ctx.connector.readResponseHead(stream) };
}

/**
 * Proxies one HTTP request: origin by Host or URL, stream to the exit, request body
 * streamed up, response head and body streamed back. Bodies up to 64 KiB are buffered;
 * such a request whose path breaks before the response head is retried once on another
 * path when it is idempotent, and whatever its method on up to two more paths while hops
 * refuse the stream unprocessed, and once through another exit when the exit could not
 * connect to the origin; a GET body broken mid-way is resumed with a Range request
 * (body-relay.ts). Never rejects.
 */
export async function proxyRequest(
  ctx: ExchangeContext,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const t = parseTarget(req);
  if ('status' in t) return fail(ctx, req, res, t);
  const origin = originFor(ctx.catalog, t.authority);
  if ('status' in origin) return fail(ctx, req, res, origin);
  const head = requestHeadFor(req, t, ctx.nodeId);
  let body: Buffer | null;
  try {
    body = await bufferBody(req, head.bodyLength);
  } catch {
    return void res.destroy();
  }
  const idempotent = isIdempotent(head.method, head.headers);
  const open: OpenRequest = { origin, kind: 'http', head };
  let a = await attempt(ctx, req, res, open, body);
  // Tries on other paths while safe (mayTryAgain): e.g. in a rolling restart a relay may
  // not have its tunnel to the restarted node yet and refuses the stream unprocessed. And
  // once through another exit when the exit could not connect to the origin
  // (exitCouldNotConnect): e.g. its own link to the origin is cut.
  const avoid: string[][] = [];
  const avoidExits: string[] = [];
  for (let tries = 1; ; tries++) {
    if (!('answer' in a) || body === null || res.destroyed) break;
    const failed = a.answer;
    if ('v' in failed) {
      if (!exitCouldNotConnect(failed) || avoidExits.length > 0) break;
      resetStream(a.entry.stream, WireCode.CANCEL);
      avoidExits.push(exitOf(a.entry.path));
    } else {
      if (!mayTryAgain(tries, failed, a.entry.stream.resetCode, idempotent)) break;
      ctx.connector.pathBroke(a.entry);
      avoid.push(a.entry.path);
    }
    const b = await attempt(ctx, req, res, { ...open, avoid, avoidExits, id: a.entry.id }, body);
    ctx.log.info(
      {
        reqId: a.entry.id,
        [F.PATH]: a.entry.path.join(','),
        ok: 'answer' in b,
        tries,
        why: 'v' in failed ? failed.error?.code : failed.code,
      },
      'v' in failed ? 'request retried through another exit' : 'request retried on another path',
    );
    if (!('answer' in b)) break;
    a = b;
  }
  if (!('answer' in a)) return fail(ctx, req, res, a);
  const { entry, answer } = a;
  const { stream, path } = entry;
  if (!('v' in answer)) return fail(ctx, req, res, answer, path);
  if (answer.error) {
    const f = { status: answer.status, code: answer.error.code, message: answer.error.message };
    resetStream(stream, WireCode.CANCEL);
    return fail(ctx, req, res, f, path);
  }
  logWhenDone(ctx, req, res, origin, entry);
  writeResponse(ctx, res, answer, path);
  if (res.destroyed) return resetStream(stream, WireCode.CANCEL);
  const expected = promisedLength(head.method, answer);
  await relayBody(ctx, res, entry, expected, () => resumePlanFor(origin, head, answer));
}

function logWhenDone(
  ctx: ExchangeContext,
  req: IncomingMessage,
  res: ServerResponse,
  origin: Origin,
  entry: EntryStream,
): void {
  // A listener and a closure per request for a line that is almost never enabled.
  if (!ctx.log.isLevelEnabled('debug')) return;
  const started = performance.now();
  res.once('finish', () => {
    ctx.log.debug(
      {
        reqId: entry.id,
        method: req.method,
        [F.ORIGIN]: origin.name,
        [F.PATH]: entry.path.join(','),
        status: res.statusCode,
        [F.DURATION_MS]: Math.round(performance.now() - started),
      },
      'request done',
    );
  });
}

function writeResponse(
  ctx: ExchangeContext,
  res: ServerResponse,
  head: ResponseHead,
  path: string[],
): void {
  const headers: HeaderPairs = head.headers.map(([n, v]) => [n, v]);
  appendField(headers, 'Via', `1.1 ${ctx.nodeId}`);
  if (ctx.debugHeaders) setField(headers, PATH_HEADER, path.join(','));
  try {
    res.writeHead(head.status, toOutgoing(headers));
  } catch (err) {
    ctx.log.warn({ err }, 'origin response head rejected by the http server');
    res.destroy();
  }
}
