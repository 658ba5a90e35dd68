import { fileURLToPath } from 'node:url';

/**
 * The script of a child process the entry forks (its acceptor, its slow lane): `name`.js
 * next to `from` (the caller's `import.meta.url`) when running compiled, `name`.ts under
 * tsx (tests, benches), with the flag that loads tsx in the child.
 */
export function childScript(name: string, from: string): { path: string; execArgv: string[] } {
  const source = from.endsWith('.ts');
  const url = new URL(`./${name}${source ? '.ts' : '.js'}`, from);
  return { path: fileURLToPath(url), execArgv: source ? ['--import', 'tsx'] : [] };
}
