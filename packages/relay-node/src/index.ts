export {};
export * from './proxy/index.ts';
export * from './routing/index.ts';
