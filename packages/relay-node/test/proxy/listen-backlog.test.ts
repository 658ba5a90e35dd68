import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { hasSs, peerlessEntryPlane, socketsOnPort } from './mesh.ts';

// The entry's accept queue: Node's default (511) let the kernel drop connections
// (ListenOverflows) when 10,000 slow clients connected in bursts (docs/reliability.md,
// "Slow clients"). The kernel reports a listening socket's queue length as its Send-Q
// (`ss -lt`), capped by net.core.somaxconn.

const somaxconn = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8').trim());

/** Send-Q of the listening socket on `port`: its accept queue length. */
function acceptQueueLength(port: number): number {
  const fields = (socketsOnPort(port, true)[0] ?? '').trim().split(/\s+/);
  return Number(fields[2]);
}

async function entryBacklog(listenBacklog?: number): Promise<number> {
  const plane = peerlessEntryPlane(listenBacklog === undefined ? {} : { listenBacklog }, {
    exit: { healthChecks: false },
  });
  try {
    const { http } = await plane.start();
    return acceptQueueLength((http as { port: number }).port);
  } finally {
    await plane.destroy();
  }
}

describe.skipIf(!hasSs())('entry listen backlog', () => {
  it('defaults to 4096 (capped by net.core.somaxconn), not Node default 511', async () => {
    expect(await entryBacklog()).toBe(Math.min(4096, somaxconn));
  });

  it('takes listenBacklog from the entry options', async () => {
    expect(await entryBacklog(100)).toBe(Math.min(100, somaxconn));
  });
});
