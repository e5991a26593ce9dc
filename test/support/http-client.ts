import type { Agent} from 'node:http';
import { request, type IncomingHttpHeaders } from 'node:http';
import { connect, type ClientHttp2Session } from 'node:http2';

export interface HttpResult {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** An HTTP/1.1 request through a gateway's outbound listener, addressed by Host. */
export function http1(outbound: string, host: string, options: { method?: string; path?: string; headers?: Record<string, string>; body?: Buffer | string | AsyncIterable<Buffer>; agent?: Agent | false; localAddress?: string } = {}): Promise<HttpResult> {
  const [hostname, port] = outbound.split(':') as [string, string];
  return new Promise((resolve, reject) => {
    const req = request({ host: hostname, port: Number(port), method: options.method ?? 'GET', path: options.path ?? '/', headers: { host, ...(options.headers ?? {}) }, agent: options.agent ?? false, ...(options.localAddress ? { localAddress: options.localAddress } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    const body = options.body;
    if (body === undefined) req.end();
    else if (typeof body === 'string' || Buffer.isBuffer(body)) req.end(body);
    else {
      void (async () => {
        for await (const chunk of body) if (!req.write(chunk)) await new Promise((r) => req.once('drain', r));
        req.end();
      })();
    }
  });
}

/** HTTP/2 cleartext (prior knowledge) to an outbound listener. */
export async function h2c(outbound: string, authority: string, path = '/', session?: ClientHttp2Session): Promise<HttpResult> {
  const own = session ?? connect(`http://${outbound}`);
  try {
    return await new Promise((resolve, reject) => {
      const stream = own.request({ ':method': 'GET', ':path': path, ':authority': authority });
      const chunks: Buffer[] = [];
      let headers: IncomingHttpHeaders = {};
      stream.on('response', (h) => {
        headers = h;
      });
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => resolve({ status: Number(headers[':status']), headers, body: Buffer.concat(chunks).toString('utf8') }));
      stream.on('error', reject);
      stream.end();
    });
  } finally {
    if (!session) own.close();
  }
}
