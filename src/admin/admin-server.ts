import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseHostPort } from '../config/shape.js';
import { errorMessage, ErrorCodes, FedgateError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { Registry } from './metrics.js';

export interface Readiness {
  ready: boolean;
  reason?: string;
}

export type AdminRoute = (req: IncomingMessage, res: ServerResponse, body: Buffer) => Promise<void> | void;

export interface AdminServerOptions {
  listen: string;
  registry: Registry;
  log: Logger;
  /** Liveness: false only when the process should be restarted. */
  health?: () => boolean;
  readiness: () => Readiness;
  /** What /config shows: the applied configuration, never secrets. */
  config: () => unknown;
  /** Extra routes, by "METHOD /path". */
  routes?: Record<string, AdminRoute>;
  /** Largest request body accepted by extra routes. */
  maxBodyBytes?: number;
}

export interface AdminServer {
  server: Server;
  port: number;
  close(): Promise<void>;
}

function send(res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

export function sendJson(res: ServerResponse, status: number, value: unknown): void {
  send(res, status, `${JSON.stringify(value, null, 2)}\n`, 'application/json');
}

/** The admin HTTP endpoint every fedgate process serves: /healthz, /readyz, /metrics, /config. */
export async function startAdminServer(options: AdminServerOptions): Promise<AdminServer> {
  const maxBody = options.maxBodyBytes ?? 1024 * 1024;
  const server = createServer({ headersTimeout: 10_000, requestTimeout: 30_000, maxHeaderSize: 16 * 1024 }, (req, res) => {
    void handle(req, res).catch((error: unknown) => {
      options.log.warn({ err: errorMessage(error), path: req.url }, 'admin request failed');
      if (!res.headersSent) sendJson(res, 500, { error: errorMessage(error) });
      else res.destroy();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const route = options.routes?.[`${req.method} ${path}`];
    if (route) {
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of req) {
        size += (chunk as Buffer).length;
        if (size > maxBody) {
          sendJson(res, 413, { error: `body larger than ${maxBody} bytes` });
          return;
        }
        chunks.push(chunk as Buffer);
      }
      await route(req, res, Buffer.concat(chunks));
      return;
    }
    if (req.method !== 'GET') {
      sendJson(res, 405, { error: 'method not allowed' });
      return;
    }
    switch (path) {
      case '/healthz':
        if (options.health?.() === false) send(res, 503, 'unhealthy\n');
        else send(res, 200, 'ok\n');
        return;
      case '/readyz': {
        const readiness = options.readiness();
        send(res, readiness.ready ? 200 : 503, readiness.ready ? 'ready\n' : `not ready: ${readiness.reason ?? 'starting'}\n`);
        return;
      }
      case '/metrics':
        send(res, 200, await options.registry.metrics(), options.registry.contentType);
        return;
      case '/config':
        sendJson(res, 200, options.config());
        return;
      default:
        sendJson(res, 404, { error: `no route ${path}` });
    }
  }

  const address = parseHostPort(options.listen);
  if (!address) throw new FedgateError(ErrorCodes.CONFIG_INVALID, `admin listen address "${options.listen}" is not host:port`);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
