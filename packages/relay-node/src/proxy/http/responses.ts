import { type ServerResponse, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { EntryFailure } from '../entry-connector.ts';

/** Response header carrying the path with `--debug-headers`: `bj-1,tk-1` (entry first). */
export const PATH_HEADER = 'x-relaymesh-path';
/** Response header naming the error code on answers the entry makes itself. */
export const ERROR_HEADER = 'x-relaymesh-error';

function errorBody(f: EntryFailure): string {
  return `relaymesh: ${f.message} (${f.code})\n`;
}

/** Answers an HTTP request with a short plain-text error naming the reason and code. */
export function sendError(res: ServerResponse, f: EntryFailure, path?: string[]): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = errorBody(f);
  const headers: Record<string, string | number> = {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    [ERROR_HEADER]: f.code,
  };
  if (path) headers[PATH_HEADER] = path.join(',');
  res.writeHead(f.status, headers);
  res.end(body);
}

/** Same answer written raw on a socket (CONNECT and upgrade requests), then closed. */
export function sendRawError(socket: Duplex, f: EntryFailure, path?: string[]): void {
  if (socket.destroyed || !socket.writable) {
    socket.destroy();
    return;
  }
  const body = errorBody(f);
  const lines = [
    `HTTP/1.1 ${f.status} ${STATUS_CODES[f.status] ?? 'Error'}`,
    'content-type: text/plain; charset=utf-8',
    `content-length: ${Buffer.byteLength(body)}`,
    `${ERROR_HEADER}: ${f.code}`,
    'connection: close',
  ];
  if (path) lines.push(`${PATH_HEADER}: ${path.join(',')}`);
  socket.end(`${lines.join('\r\n')}\r\n\r\n${body}`);
}
