#!/usr/bin/env node
import { type OriginConfig, startOrigin } from '../origins/start-origin.ts';
import { failEntry, runEntry } from './run-entry.ts';

// Process entry of an origin server. Config: OriginConfig as JSON (argv or --config).
// Prints {"ready":true,"port":N} when listening.
runEntry('origin', async (config) => {
  const server = await startOrigin(config as OriginConfig);
  return { resource: server, ready: { port: server.port, kind: (config as OriginConfig).kind } };
}).catch(failEntry);
