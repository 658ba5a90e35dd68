import type { IncomingMessage, ServerResponse } from 'node:http';
import { F, type Logger, WireCode } from '@relaymesh/shared';
import type { EntryConnector, EntryFailure, EntryStream } from '../entry-connector.ts';
import type { HeaderPairs, RequestHead, ResponseHead } from '../open-header.ts';
import { resetStream } from '../splice.ts';
import type { Origin, OriginCatalog } from '../types.ts';
import {
  addForwarded,
  appendField,
  bareHost,
  endToEndPairs,
  setField,
  toOutgoing,
} from './headers.ts';
import { PATH_HEADER, sendError } from './responses.ts';

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

/**
 * Proxies one HTTP request: origin by Host or URL, stream to the exit, request body
 * streamed up, response head and body streamed back. Never rejects.
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
  let open: EntryStream;
  try {
    open = ctx.connector.open({ origin, kind: 'http', head: requestHeadFor(req, t, ctx.nodeId) });
  } catch (err) {
    return fail(ctx, req, res, {
      status: 502,
      code: 'ERR_ROUTE_NONE',
      message: (err as Error).message,
    });
  }
  const { stream, path } = open;
  const started = performance.now();
  res.once('finish', () => {
    const durationMs = Math.round(performance.now() - started);
    ctx.log.debug(
      {
        reqId: open.id,
        method: req.method,
        [F.ORIGIN]: origin.name,
        [F.PATH]: path.join(','),
        status: res.statusCode,
        [F.DURATION_MS]: durationMs,
      },
      'request done',
    );
  });
  stream.on('error', () => {}); // surfaced through 'close' and resetCode
  res.once('close', () => {
    if (!res.writableFinished) resetStream(stream, WireCode.CANCEL);
  });
  req.once('error', () => resetStream(stream, WireCode.CANCEL));
  req.pipe(stream);
  const head = await ctx.connector.readResponseHead(stream);
  if (!('v' in head)) return fail(ctx, req, res, head, path);
  if (head.error) {
    const f = { status: head.status, code: head.error.code, message: head.error.message };
    resetStream(stream, WireCode.CANCEL);
    return fail(ctx, req, res, f, path);
  }
  writeResponse(ctx, res, head, path);
  stream.once('close', () => {
    if (!stream.readableEnded) res.destroy();
  });
  stream.pipe(res);
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
