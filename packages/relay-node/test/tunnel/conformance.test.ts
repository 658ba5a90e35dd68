import { once } from 'node:events';
import { isRelayError, WireCode } from '@relaymesh/shared';
import { afterEach, describe, expect, it } from 'vitest';
import { type MuxStream, type Tunnel, TunnelDialer, TunnelListener } from '../../src/index.ts';
import { type MuxPair, runMuxConformance } from '../mux/conformance.ts';
import {
  collect,
  digest,
  nextStream,
  random,
  sha256,
  streamError,
  until,
  writeAll,
} from '../mux/helpers.ts';
import { TOKEN } from './helpers.ts';

/**
 * A real tunnel on 127.0.0.1: TunnelListener, TunnelDialer, hello, WsTransport. The mux
 * roles are fixed by the hello (the dialer is the mux client); the suite opens streams
 * from both ends, so the listener side opening streams is covered too.
 */
async function wsTunnelPair(): Promise<MuxPair> {
  const listener = new TunnelListener({ nodeId: 'conf-server', token: TOKEN, host: '127.0.0.1' });
  await listener.listen();
  const accepted = once(listener, 'tunnel') as Promise<[Tunnel]>;
  const dialer = new TunnelDialer({ nodeId: 'conf-client', token: TOKEN });
  const client = await dialer.dial(listener.url);
  const [server] = await accepted;
  return {
    client: client.session,
    server: server.session,
    async cleanup() {
      client.destroy();
      server.destroy();
      await Promise.all([client.closed, server.closed]);
      listener.destroy();
    },
  };
}

runMuxConformance('ws tunnel 127.0.0.1 (dialer is the mux client)', wsTunnelPair);

/**
 * The roles are fixed by the hello, so "reversed" here means the listener's session (mux
 * server, even ids) is the opener: the same behaviours as the suite, driven from there.
 */
describe('ws tunnel, streams opened from the listener side', () => {
  let pair: MuxPair | undefined;
  afterEach(async () => {
    await pair?.cleanup();
    pair = undefined;
  });

  it('carries 8 MiB each way intact (sha256)', async () => {
    pair = await wsTunnelPair();
    const { client: dialerSide, server: listenerSide } = pair;
    const up = random(8 * 1024 * 1024);
    const down = random(8 * 1024 * 1024);
    const accepted = nextStream(dialerSide);
    const s = listenerSide.open();
    expect(s.id % 2).toBe(0);
    const peer = await accepted;
    const [got1, got2] = await Promise.all([
      digest(peer),
      digest(s),
      writeAll(s, up),
      writeAll(peer, down),
    ]);
    expect(got1).toEqual({ bytes: up.length, sha256: sha256(up) });
    expect(got2).toEqual({ bytes: down.length, sha256: sha256(down) });
  });

  it('half-closes, resets with a code, and runs 200 streams at once', async () => {
    pair = await wsTunnelPair();
    const { client: dialerSide, server: listenerSide } = pair;
    // half-close: request, then the answer still flows
    let accepted = nextStream(dialerSide);
    const s = listenerSide.open();
    s.end(Buffer.from('request'));
    const peer = await accepted;
    expect((await collect(peer)).toString()).toBe('request');
    peer.end(Buffer.from('answer'));
    expect((await collect(s)).toString()).toBe('answer');
    // reset with a code
    accepted = nextStream(dialerSide);
    const r = listenerSide.open();
    r.write(Buffer.from('x'));
    const rPeer = await accepted;
    const err = streamError(rPeer);
    r.reset(WireCode.UPSTREAM_TIMEOUT);
    expect(isRelayError(await err, 'ERR_MUX_STREAM_RESET')).toBe(true);
    expect(rPeer.resetCode).toBe(WireCode.UPSTREAM_TIMEOUT);
    // 200 at once, echoed by the dialer side
    dialerSide.on('stream', (x: MuxStream) => x.pipe(x));
    const payloads = Array.from({ length: 200 }, (_, i) => random(1000 + i * 97));
    const results = await Promise.all(
      payloads.map((p) => {
        const x = listenerSide.open();
        x.end(p);
        return collect(x, 10_000);
      }),
    );
    results.forEach((got, i) => {
      expect(sha256(got)).toBe(sha256(payloads[i]!));
    });
    await until(() => listenerSide.streamCount === 0 && dialerSide.streamCount === 0);
  });
});
