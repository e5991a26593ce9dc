// A sample backend for docker-compose.yml: answers every request with who served it, so
// curl through a gateway shows which cluster the request landed in.
import { createServer } from 'node:http';

const service = process.env.SERVICE_NAME ?? 'echo';
const cluster = process.env.CLUSTER ?? 'unknown';
const port = Number(process.env.PORT ?? 8080);

const server = createServer((request, response) => {
  const body = { service, cluster, method: request.method, path: request.url, host: request.headers.host };
  response.writeHead(200, { 'content-type': 'application/json' });
  response.end(`${JSON.stringify(body)}\n`);
});
server.listen(port, '0.0.0.0', () => {
  process.stderr.write(`${service} (${cluster}) listening on :${port}\n`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
