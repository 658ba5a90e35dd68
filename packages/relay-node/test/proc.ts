import { readFileSync } from 'node:fs';

/**
 * Field `n` of a /proc stat file (`/proc/PID/stat`, `/proc/PID/task/TID/stat`), numbered
 * as proc(5) numbers them: 3 state, 19 nice, 41 policy. The name (field 2) may hold spaces
 * and parentheses, so the fields are counted from its closing one.
 */
export function statField(statFile: string, n: number): string {
  const stat = readFileSync(statFile, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[n - 3] ?? '';
}
