import { isRelayError, type RelayError } from '@relaymesh/shared';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { MuxStream } from '../../src/index.ts';
import { collect, within } from '../mux/helpers.ts';
import { connectPair, makeDialer, Resources, startListener } from './helpers.ts';

const r = new Resources();
afterEach(() => r.closeAll());

/** TCP handles still open in this worker (each test file runs in its own). */
const tcpHandles = () => process.getActiveResourcesInfo().filter((n) => n.startsWith('TCP'));

afterAll(async () => {
  await r.closeAll();
  const deadline = Date.now() + 3000;
  while (tcpHandles().length > 0 && Date.now() < deadline) {
    await new Promise((res) => setTimeout(res, 20));
  }
  expect(tcpHandles()).toEqual([]);
});

describe('tunnel lifecycle', () => {
  it('listener.close() drains: open streams finish, peers see a clean close, no new tunnels', async () => {
    const listener = await startListener(r);
    const { client, server } = await connectPair(r, listener, makeDialer());
    // A stream in flight when the close starts still completes.
    server.session.on('stream', (s: MuxStream) => {
      s.resume();
      s.once('end', () => setTimeout(() => s.end(Buffer.from('late answer')), 50));
    });
    const s = client.session.open();
    s.end(Buffer.from('question'));
    const answer = collect(s, 3000);
    await new Promise((res) => setTimeout(res, 10));
    const url = listener.url;
    const closing = listener.close();
    expect((await answer).toString()).toBe('late answer');
    await within(closing, 5000, 'listener close');
    expect(await within(client.closed, 3000, 'client down')).toBeUndefined();
    expect(server.isClosed).toBe(true);
    await listener.close(); // idempotent
    listener.destroy();
    const err = await makeDialer()
      .dial(url)
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(isRelayError(err)).toBe(true);
    expect((err as RelayError).code).toBe('ERR_DIAL_REFUSED');
  });

  it('tunnel.destroy(err) fails its streams at once and tells the peer the code', async () => {
    const listener = await startListener(r);
    const { client, server } = await connectPair(r, listener, makeDialer());
    server.session.on('stream', (st: MuxStream) => st.on('error', () => {}));
    const s = client.session.open();
    s.write(Buffer.alloc(1000));
    const streamErr = new Promise<Error>((res) => s.once('error', res));
    const { RelayError: RE } = await import('@relaymesh/shared');
    server.destroy(new RE('ERR_TUNNEL_REPLACED', 'test says so'));
    server.destroy(); // idempotent
    const clientErr = (await within(client.closed, 3000, 'client down')) as RelayError;
    expect(clientErr.code).toBe('ERR_TUNNEL_REPLACED');
    expect(isRelayError(await within(streamErr, 3000, 'stream error'))).toBe(true);
    expect(((await server.closed) as RelayError).code).toBe('ERR_TUNNEL_REPLACED');
  });
});

describe('configuration is checked up front', () => {
  it.each([
    ['an empty token', { token: '' }],
    ['a node id with a space', { nodeId: 'node one' }],
    ['an empty node id', { nodeId: '' }],
    ['a non-ascii region', { region: 'r\u00e9gion' }],
    ['a bad mux config', { mux: { dataFrameSize: 0 } }],
  ])('%s throws ERR_CONFIG_INVALID from both constructors', async (_name, bad) => {
    const { TunnelDialer, TunnelListener } = await import('../../src/index.ts');
    const base = { nodeId: 'n1', token: 'secret-token-0123456789' };
    for (const make of [
      () => new TunnelListener({ ...base, ...bad }),
      () => new TunnelDialer({ ...base, ...bad }),
    ]) {
      expect(make).toThrow(expect.objectContaining({ code: 'ERR_CONFIG_INVALID' }));
    }
  });

  it('a url that is not ws:// or wss:// is ERR_CONFIG_INVALID', async () => {
    const err = await makeDialer()
      .dial('http://127.0.0.1:1')
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect((err as RelayError).code).toBe('ERR_CONFIG_INVALID');
  });
});
