import { once } from 'node:events';
import { type Tunnel, TunnelDialer, TunnelListener } from '../../src/index.ts';
import { type MuxPair, runMuxConformance } from '../mux/conformance.ts';
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
