import { once } from 'node:events';
import { createServer, type Socket, connect as tcpConnect } from 'node:net';
import { createMemoryPair, Session, StreamTransport } from '../../src/index.ts';
import { type MuxPair, runMuxConformance } from './conformance.ts';

function sessions(clientEnd: StreamTransport, serverEnd: StreamTransport): MuxPair {
  const client = new Session({ transport: clientEnd, role: 'client' });
  const server = new Session({ transport: serverEnd, role: 'server' });
  return {
    client,
    server,
    async cleanup() {
      client.destroy();
      server.destroy();
      await Promise.all([client.closed, server.closed]);
    },
  };
}

async function memoryPair(reversed: boolean, buffer?: number): Promise<MuxPair> {
  const [a, b] = createMemoryPair(buffer);
  const opts = buffer === undefined ? {} : { highWaterMark: buffer };
  const first = new StreamTransport(a, { description: 'memory a', ...opts });
  const second = new StreamTransport(b, { description: 'memory b', ...opts });
  return reversed ? sessions(second, first) : sessions(first, second);
}

/**
 * A TCP connection on 127.0.0.1. `clientAccepts`: the mux client sits on the accepting
 * side of the TCP connection (roles reversed).
 */
async function tcpPair(clientAccepts: boolean): Promise<MuxPair> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const dialed = tcpConnect(port, '127.0.0.1');
  await once(dialed, 'connect');
  const [acceptedSocket] = await accepted;
  server.close();
  for (const s of [dialed, acceptedSocket]) s.setNoDelay(true);
  const dialT = new StreamTransport(dialed, {
    description: `tcp dial ${port}`,
    copiesOnWrite: true,
  });
  const acceptT = new StreamTransport(acceptedSocket, {
    description: `tcp accept ${port}`,
    copiesOnWrite: true,
  });
  return clientAccepts ? sessions(acceptT, dialT) : sessions(dialT, acceptT);
}

runMuxConformance('memory pair', () => memoryPair(false));
runMuxConformance('memory pair, roles reversed', () => memoryPair(true));
// Tiny buffers: the transport pushes back after one frame, exercising drain paths.
runMuxConformance('memory pair, 16 KiB buffers', () => memoryPair(false, 16 * 1024));
runMuxConformance('tcp 127.0.0.1', () => tcpPair(false));
runMuxConformance('tcp 127.0.0.1, roles reversed', () => tcpPair(true));
