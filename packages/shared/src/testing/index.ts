export { startBlockingProxy } from './blocking-proxy.ts';
export { FakeClock } from './fake-clock.ts';
