import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { RelayError } from '@relaymesh/shared';

/** The package's data/ folder (same relative place from src/ and dist/). */
export const DATA_DIR = fileURLToPath(new URL('../../data/', import.meta.url));
export const DEFAULT_MATRIX_PATH = `${DATA_DIR}latency-matrix.csv`;

/** Directed RTTs: `get(a, b)` is the RTT probed from a to b. */
export interface LatencyMatrix {
  get(from: string, to: string): number | undefined;
  regions(): string[];
}

/**
 * Reads `region,region,rtt_ms` rows, skipping `#` comment lines (the provenance header)
 * and the column header.
 * @throws ERR_WORLD_CONFIG on a malformed row.
 */
export function loadLatencyMatrix(path = DEFAULT_MATRIX_PATH): LatencyMatrix {
  const rtt = new Map<string, number>();
  const regions = new Set<string>();
  const lines = readFileSync(path, 'utf8').split('\n');
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith('region,')) return;
    const [a, b, ms] = line.split(',');
    const value = Number(ms);
    if (!a || !b || !Number.isFinite(value) || value < 0)
      throw new RelayError('ERR_WORLD_CONFIG', `bad latency row ${i + 1} in ${path}: ${line}`);
    rtt.set(`${a}>${b}`, value);
    regions.add(a);
    regions.add(b);
  });
  return {
    get: (from, to) => rtt.get(`${from}>${to}`),
    regions: () => [...regions].sort(),
  };
}
