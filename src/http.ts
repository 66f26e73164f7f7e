// /metrics, /healthz and /readyz on one small HTTP server.
import { createServer, type Server } from 'node:http';
import type { Metrics } from './metrics.ts';

export interface Probes {
  /** The process works (event loop turning, not shutting down). */
  healthy(): boolean;
  /** Caches synced and, with leader election, either leading or a ready standby. */
  ready(): boolean;
}

export function startHttpServer(bind: { host: string; port: number }, metrics: Metrics, probes: Probes): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const answer = (ok: boolean): void => {
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ok\n' : 'not ready\n');
    };
    if (path === '/metrics') {
      metrics.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
        (err: unknown) => res.writeHead(500).end(String(err)),
      );
    } else if (path === '/healthz' || path === '/livez') answer(probes.healthy());
    else if (path === '/readyz') answer(probes.ready());
    else res.writeHead(404).end('not found\n');
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(bind.port, bind.host, () => resolve(server));
  });
}

/** Parses ":8080", "0.0.0.0:8080", "127.0.0.1:0". */
export function parseBindAddress(text: string): { host: string; port: number } {
  const i = text.lastIndexOf(':');
  const port = Number(text.slice(i + 1));
  if (i < 0 || !Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid bind address "${text}": expected [host]:port, e.g. :8080`);
  return { host: text.slice(0, i) || '0.0.0.0', port };
}
