import { once } from 'node:events';
import { isRelayError, type RelayError } from '@relaymesh/shared';
import { afterEach, describe, expect, it } from 'vitest';
import type { Tunnel } from '../../src/index.ts';
import { within } from '../mux/helpers.ts';
import { TEST_CERT, TEST_KEY } from './fixtures/tls.ts';
import { expectEcho, makeDialer, Resources, startListener, tapProxy } from './helpers.ts';

const r = new Resources();
afterEach(() => r.closeAll());

describe('tunnels over TLS (wss://)', () => {
  it('carries the hello and streams over TLS; nothing readable on the wire', async () => {
    const listener = await startListener(r, { tls: { key: TEST_KEY, cert: TEST_CERT } });
    expect(listener.url).toMatch(/^wss:\/\/127\.0\.0\.1:\d+$/);
    const tap = await tapProxy(r, { host: '127.0.0.1', port: listener.address!.port });
    // The tap is a plain TCP relay, so dial it as if it were the listener.
    const url = tap.url.replace('ws://', 'wss://');
    const accepted = once(listener, 'tunnel') as Promise<[Tunnel]>;
    const client = r.add(
      await makeDialer({ nodeId: 'secure-dialer', tls: { ca: TEST_CERT } }).dial(url),
      (t) => t.destroy(),
    );
    const [server] = await within(accepted, 3000, 'tunnel');
    expect(server.peerNodeId).toBe('secure-dialer');
    await expectEcho(client, server, 'secret payload 4f1d');
    const wire = Buffer.concat([...tap.up, ...tap.down]);
    expect(wire.length).toBeGreaterThan(500);
    for (const visible of ['secure-dialer', 'listener-1', 'relaymux.1', 'secret payload 4f1d']) {
      expect(wire.indexOf(Buffer.from(visible)), visible).toBe(-1);
    }
  });

  it('zeroMaskOverTls carries data intact', async () => {
    const listener = await startListener(r, { tls: { key: TEST_KEY, cert: TEST_CERT } });
    const accepted = once(listener, 'tunnel') as Promise<[Tunnel]>;
    const dialer = makeDialer({ tls: { ca: TEST_CERT }, zeroMaskOverTls: true });
    const client = r.add(await dialer.dial(listener.url), (t) => t.destroy());
    const [server] = await within(accepted, 3000, 'tunnel');
    await expectEcho(client, server, 'unmasked but encrypted');
  });

  it('an untrusted certificate fails the dial with ERR_TUNNEL_CONNECT', async () => {
    const listener = await startListener(r, { tls: { key: TEST_KEY, cert: TEST_CERT } });
    const err = await makeDialer()
      .dial(listener.url)
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(isRelayError(err), String(err)).toBe(true);
    expect((err as RelayError).code).toBe('ERR_TUNNEL_CONNECT');
    expect((err as RelayError).message).toMatch(/self.signed|certificate/i);
    expect(listener.tunnels.size).toBe(0);
  });

  it('a plain ws:// dial to a wss listener does not get a tunnel', async () => {
    const listener = await startListener(r, { tls: { key: TEST_KEY, cert: TEST_CERT } });
    const url = listener.url.replace('wss://', 'ws://');
    const err = await makeDialer({ connectTimeoutMs: 1000 })
      .dial(url)
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(isRelayError(err), String(err)).toBe(true);
    expect(listener.tunnels.size).toBe(0);
  });
});
