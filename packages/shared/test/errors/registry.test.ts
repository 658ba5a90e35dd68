import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, isRelayError, RelayError } from '../../src/index.ts';

const DOC = new URL('../../../../docs/errors.md', import.meta.url);

function documentedCodes(): Map<string, string> {
  const rows = new Map<string, string>();
  for (const line of readFileSync(DOC, 'utf8').split('\n')) {
    const m = /^\|\s*`(ERR_[A-Z0-9_]+)`\s*\|\s*(true|false)\s*\|/.exec(line);
    if (m) rows.set(m[1]!, m[2]!);
  }
  return rows;
}

describe('error registry', () => {
  it('docs/errors.md lists exactly the registry codes with the same retryable flag', () => {
    const documented = documentedCodes();
    const registry = new Map(Object.entries(ERROR_CODES).map(([c, e]) => [c, String(e.retryable)]));
    expect([...documented.keys()].sort()).toEqual([...registry.keys()].sort());
    for (const [code, retryable] of registry) expect(documented.get(code), code).toBe(retryable);
  });

  it('RelayError carries code, retryable and details; isRelayError checks by code', () => {
    const cause = new Error('boom');
    const err = new RelayError('ERR_DIAL_TIMEOUT', 'connect timed out', {
      cause,
      details: { ms: 5 },
    });
    expect(err.code).toBe('ERR_DIAL_TIMEOUT');
    expect(err.retryable).toBe(true);
    expect(err.details).toEqual({ ms: 5 });
    expect(err.cause).toBe(cause);
    expect(isRelayError(err, 'ERR_DIAL_TIMEOUT')).toBe(true);
    expect(isRelayError(err, 'ERR_CLOSED')).toBe(false);
    expect(isRelayError({ code: 'ENOENT' })).toBe(false);
    expect(isRelayError(null)).toBe(false);
  });
});
