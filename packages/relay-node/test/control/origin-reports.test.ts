import net from 'node:net';
import { Coordinator } from '@relaymesh/coordinator';
import { DirectDialer, parseClusterConfig } from '@relaymesh/shared';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CoordinatorClient,
  type MembershipSnapshot,
  OriginProber,
  queryNodes,
} from '../../src/control/index.ts';
import { TOKEN, waitFor } from './helpers.ts';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

describe('OriginProber feeding CoordinatorClient reports', () => {
  it('probes the origins the coordinator declares and reports them: the node becomes an exit', async () => {
    const origin = net.createServer((s) => s.destroy());
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => origin.close(r)));
    const port = (origin.address() as net.AddressInfo).port;
    const config = parseClusterConfig(
      `token: ${TOKEN}\norigins:\n  - {name: files, hosts: [files.test], upstreams: ["tcp://127.0.0.1:${port}"]}\n`,
    );
    const coord = new Coordinator({
      config,
      listen: '127.0.0.1:0',
      warmupMs: 0,
      heartbeatIntervalMs: 100,
      reportIntervalMs: 100,
      recomputeIntervalMs: 50,
    });
    await coord.start();
    cleanups.push(() => coord.destroy());
    // Wired the way RelayNode does: membership -> prober origins, prober -> reports.
    const prober = new OriginProber({ dialer: new DirectDialer(), intervalMs: 200 });
    const client = new CoordinatorClient({
      address: coord.address!,
      token: TOKEN,
      node: { id: 'tk-1', region: 'ap-northeast-1', advertise: 'ws://127.0.0.1:1', version: 't' },
      measurements: { peers: () => [], origins: () => prober.origins() },
    });
    client.on('membership', (m: MembershipSnapshot) => prober.setOrigins(m.origins));
    cleanups.push(() => prober.destroy());
    cleanups.push(() => client.destroy());
    prober.start();
    client.start();
    await waitFor(() => client.route('files'), 8000, 'a route for files');
    expect(client.route('files')?.path).toEqual(['tk-1']);
    const report = await queryNodes({ address: coord.address!, token: TOKEN });
    expect(report.origins).toHaveLength(1);
    expect(report.origins[0]).toMatchObject({ node: 'tk-1', origin: 'files' });
    await client.close();
    // A graceful leave takes the node out of routes without waiting for the lease.
    await waitFor(() => coord.routes().length === 0, 3000, 'routes without tk-1');
  });
});
