import { isRelayError } from '@relaymesh/shared';
import { describe, expect, it } from 'vitest';
import { streamResetReason } from '../../src/proxy/exit/http-exit.ts';

// Every parked response aborts its origin request with this reason: it carries no stack
// frames to capture or format.
describe('the abort reason of an origin request whose stream the entry reset', () => {
  it('is a RelayError whose stack is its one line, and leaves the stack trace limit as it was', () => {
    const limit = Error.stackTraceLimit;
    const err = streamResetReason();
    expect(isRelayError(err, 'ERR_PROXY_STREAM_RESET')).toBe(true);
    expect(err.message).toBe('stream reset by the entry');
    expect(err.stack).toBe('RelayError: stream reset by the entry');
    expect(Error.stackTraceLimit).toBe(limit);
    expect(new Error('x').stack?.split('\n').length).toBeGreaterThan(1);
  });
});
