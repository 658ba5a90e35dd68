import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { queryRoutes, SUPERVISED_CLI } from '@relaymesh/relay-node';

// Helpers of the acceptance scenarios (issue 5): the real relaymesh processes on a
// simulated world. They run the compiled CLI and world binaries: `pnpm exec tsc -b` first.
export const CLI = fileURLToPath(
  new URL('../../packages/relay-node/dist/cli/main.js', import.meta.url),
);
/**
 * What the worlds run as coordinator and nodes: the same CLI through a launcher that also
 * stops when its stdin closes, so a killed test run leaves no relaymesh process behind.
 */
export const MESH_CLI = SUPERVISED_CLI;
export const TOKEN = 'scenario-cluster-token-0123456789abcdef';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The coordinator's primary path for (from, origin), or undefined when it has none yet. */
export async function routePath(
  coordinator: string,
  from: string,
  origin: string,
): Promise<string[] | undefined> {
  const report = await queryRoutes(
    { address: coordinator, token: TOKEN, timeoutMs: 3000 },
    { from, origin },
  ).catch(() => undefined);
  return report?.routes.find((r) => r.from === from && r.origin === origin)?.path;
}

/** Polls until every (from, origin) pair has a route; bounded by count and deadline. */
export async function waitForRoutes(
  coordinator: string,
  pairs: { from: string; origin: string }[],
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 1000 && Date.now() < deadline; i++) {
    const report = await queryRoutes(
      { address: coordinator, token: TOKEN, timeoutMs: 3000 },
      {},
    ).catch(() => undefined);
    const have = new Set(report?.routes.map((r) => `${r.from}/${r.origin}`) ?? []);
    if (pairs.every((p) => have.has(`${p.from}/${p.origin}`))) return;
    await sleep(300);
  }
  throw new Error(`no routes for every pair within ${timeoutMs} ms`);
}

/** Live pids among `pids`. */
export function alive(pids: number[]): number[] {
  return pids.filter((pid) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  });
}

/**
 * Pids of processes whose environment holds `name=value`: children of a process we spawned
 * with a unique marker, found even after they were re-parented (other test runs on this
 * machine have other markers).
 */
export function processesWithEnv(name: string, value: string): number[] {
  const needle = `${name}=${value}`;
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const env = readFileSync(`/proc/${entry}/environ`, 'latin1').split('\0');
      if (env.includes(needle)) found.push(Number(entry));
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  return found;
}
