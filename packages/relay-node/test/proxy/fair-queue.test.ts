import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { FairQueue } from '../../src/proxy/http/fair-queue.ts';

// The queue of connections waiting for admission (the gate's, and the acceptor process's):
// real accepted sockets from 127.0.0.2, .3 and .4.

const servers: net.Server[] = [];
const sockets: net.Socket[] = [];

afterEach(() => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const s of servers.splice(0)) s.close();
});

/** Accepted sockets, one per address in `from`, in that order. */
async function accepted(from: string[]): Promise<net.Socket[]> {
  const got: net.Socket[] = [];
  const server = net.createServer((s) => {
    sockets.push(s);
    got.push(s);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  for (const address of from) {
    const c = net.connect({ port, host: '127.0.0.1', localAddress: address });
    sockets.push(c);
    const n = got.length;
    while (got.length === n) await new Promise((r) => setTimeout(r, 5));
  }
  return got;
}

describe('FairQueue', () => {
  it('takes round-robin by address; top() names the address with the most waiting', async () => {
    const from = ['127.0.0.2', '127.0.0.2', '127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.4'];
    const socks = await accepted(from);
    const q = new FairQueue<{ socket: net.Socket; i: number }>();
    expect(q.top()).toBeUndefined();
    socks.forEach((socket, i) => {
      q.push({ socket, i });
    });
    expect(q.size).toBe(6);
    expect(q.top()).toEqual({ source: '127.0.0.2', n: 3 });
    // One from each address in turn.
    expect([q.shift()?.i, q.shift()?.i, q.shift()?.i]).toEqual([0, 3, 4]);
    expect(q.top()).toEqual({ source: '127.0.0.2', n: 2 });
    // An address taken out whole: the others keep their turns.
    expect(q.take('127.0.0.2').map((w) => w.i)).toEqual([1, 2]);
    expect(q.top()).toEqual({ source: '127.0.0.4', n: 1 });
    expect(q.shift()?.i).toBe(5);
    expect(q.size).toBe(0);
    expect(q.top()).toBeUndefined();
  });

  it('skips a connection destroyed while it waited', async () => {
    const socks = await accepted(['127.0.0.2', '127.0.0.3']);
    const q = new FairQueue<{ socket: net.Socket; i: number }>();
    socks.forEach((socket, i) => {
      q.push({ socket, i });
    });
    socks[0]?.destroy();
    const skipped: number[] = [];
    expect(q.shift((w) => skipped.push(w.i))?.i).toBe(1);
    expect(skipped).toEqual([0]);
    expect(q.shift()).toBeUndefined();
  });
});
