#!/usr/bin/env node
import { type EgressProxyOptions, startEgressProxy } from '../egress-proxy.ts';
import { failEntry, runEntry } from './run-entry.ts';

// Process entry of the link emulator. Config: EgressProxyOptions as JSON (argv or --config).
// Prints {"ready":true,"port":N,"ports":{region:N},"controlPort":M} when listening.
runEntry('egress-proxy', async (config, log) => {
  const proxy = await startEgressProxy({ ...(config as EgressProxyOptions), logger: log });
  const regions = (config as EgressProxyOptions).regions;
  const port = proxy.ports[regions[0] ?? ''] ?? 0;
  return { resource: proxy, ready: { port, ports: proxy.ports, controlPort: proxy.controlPort } };
}).catch(failEntry);
