import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { HttpConnectDialer, RelayError } from '@relaymesh/shared';
import { afterEach, describe, expect, it } from 'vitest';
import {
  closeCodeFor,
  closeReasonFor,
  errorFromClose,
  type Tunnel,
  WsCloseCode,
} from '../../src/index.ts';
import { within } from '../mux/helpers.ts';
import { expectEcho, makeDialer, Resources, startListener } from './helpers.ts';

describe('close codes', () => {
  it.each([
    ['ERR_PROTOCOL_BAD_HELLO', 1002],
    ['ERR_PROTOCOL_WINDOW_EXCEEDED', 1002],
    ['ERR_TUNNEL_TEXT_MESSAGE', 1003],
    ['ERR_AUTH_FAILED', 1008],
    ['ERR_AUTH_TIMEOUT', 1008],
    ['ERR_TUNNEL_SELF', 1008],
    ['ERR_TUNNEL_PEER_MISMATCH', 1008],
    ['ERR_TUNNEL_MESSAGE_TOO_LARGE', 1009],
    ['ERR_TUNNEL_HANDSHAKE_LIMIT', 1013],
    ['ERR_TUNNEL_REPLACED', 4001],
    ['ERR_MUX_GOING_AWAY', 1001],
    ['ERR_INTERNAL', 1011],
  ] as const)('%s closes with %i and comes back as itself', (code, close) => {
    const err = new RelayError(code, 'something specific');
    expect(closeCodeFor(err)).toBe(close);
    const back = errorFromClose(close, closeReasonFor(err));
    expect(back?.code).toBe(code);
    expect(back?.details).toMatchObject({ closeCode: close });
  });

  it('a clean close is no error; uncoded closes map by close code', () => {
    expect(closeCodeFor(undefined)).toBe(WsCloseCode.NORMAL);
    expect(closeCodeFor(new Error('not ours'))).toBe(WsCloseCode.INTERNAL_ERROR);
    expect(errorFromClose(1000, '')).toBeUndefined();
    expect(errorFromClose(1001, 'server restarting')).toBeUndefined();
    expect(errorFromClose(1009, '')?.code).toBe('ERR_TUNNEL_MESSAGE_TOO_LARGE');
    expect(errorFromClose(1002, 'Invalid opcode')?.code).toBe('ERR_TUNNEL_WS_PROTOCOL');
    expect(errorFromClose(1006, '')?.code).toBe('ERR_TUNNEL_CLOSED');
    expect(errorFromClose(4999, 'ERR_NOT_A_CODE x')?.code).toBe('ERR_TUNNEL_CLOSED');
  });

  it('reasons are ASCII and fit a close frame (123 bytes)', () => {
    const reason = closeReasonFor(
      new RelayError('ERR_AUTH_FAILED', `caf\u00e9 ${'x'.repeat(300)}`),
    );
    expect(reason.startsWith('ERR_AUTH_FAILED caf? x')).toBe(true);
    expect(Buffer.byteLength(reason)).toBe(123);
  });
});

describe('dialing through an HTTP CONNECT egress proxy', () => {
  const r = new Resources();
  afterEach(() => r.closeAll());

  it('the tunnel is established through the proxy the Dialer names', async () => {
    const listener = await startListener(r);
    const connects: string[] = [];
    const proxy = http.createServer((_q, s) => s.writeHead(405).end());
    const sockets = new Set<net.Socket>();
    proxy.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
      connects.push(req.url ?? '');
      const [host, port] = (req.url ?? '').split(':');
      const upstream = net.connect(Number(port), host, () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        if (head.length > 0) upstream.write(head);
        client.pipe(upstream);
        upstream.pipe(client);
      });
      for (const s of [client, upstream]) {
        sockets.add(s);
        s.on('error', () => {});
        s.on('close', () => {
          client.destroy();
          upstream.destroy();
        });
      }
    });
    r.add(proxy, (p) => {
      for (const s of sockets) s.destroy();
      p.close();
    });
    proxy.listen(0, '127.0.0.1');
    await once(proxy, 'listening');
    const proxyPort = (proxy.address() as net.AddressInfo).port;

    const dialer = makeDialer({ dialer: new HttpConnectDialer(`http://127.0.0.1:${proxyPort}`) });
    const accepted = once(listener, 'tunnel') as Promise<[Tunnel]>;
    const client = r.add(await dialer.dial(listener.url), (t) => t.destroy());
    const [server] = await within(accepted, 3000, 'tunnel');
    expect(connects).toEqual([`127.0.0.1:${listener.address!.port}`]);
    await expectEcho(client, server);
  });
});
