/**
 * Every error an operator can cause, as the operator sees it: the real CLI against real listeners
 * (a controller, a gateway, a plain HTTP server, TLS servers with crafted certificates, a closed
 * port) and real start-ups that cannot listen or write. Each row gives the exact line fedgate
 * prints and the exit code; no row may print a stack trace.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import { PkiDirectory } from '../../src/pki/pki-directory.js';
import { craftLeaf } from '../support/crafted-certificates.js';
import { LocalFederation } from '../support/federation.js';
import { freePorts } from '../support/ports.js';
import { runFedgate } from '../support/processes.js';

const HOUR = 3_600_000;
const API_HINT = "use the controller's API address (spec.controller.listen in federation.yaml, or --controller)";

let federation: LocalFederation;
let scratch: string;
let closedPort: number;
let httpPort: number;
let unrelatedTlsPort: number;
const servers: Array<{ close(): unknown }> = [];

/** A whole-second instant `offsetMs` from now: certificates keep seconds only. */
function at(offsetMs: number): Date {
  return new Date(Math.floor((Date.now() + offsetMs) / 1000) * 1000);
}

function iso(date: Date): string {
  return date.toISOString().replace(/\.000Z$/, 'Z');
}

function controllerCa(): string {
  return join(federation.dir, 'pki', 'controller');
}

function adminCredentials(): string {
  return join(controllerCa(), 'admin');
}

function api(): string {
  return `127.0.0.1:${federation.controller?.ports.api}`;
}

async function tlsServer(pems: { chainPem: string; keyPem: string }): Promise<number> {
  const [port] = (await freePorts(1)) as [number];
  const server = createTlsServer({ cert: pems.chainPem, key: pems.keyPem }, (socket) => socket.on('error', () => undefined));
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  servers.push(server);
  return port;
}

/** A credentials directory: a leaf and its key, with `caFile` as ca.crt. */
function credentials(name: string, leaf: { chainPem: string; keyPem: string }, caFile: string): string {
  const dir = join(scratch, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'tls.crt'), leaf.chainPem);
  writeFileSync(join(dir, 'tls.key'), leaf.keyPem);
  copyFileSync(caFile, join(dir, 'ca.crt'));
  return dir;
}

/** A copy of the federation's controller config in its own directory, with `edit` applied. */
function controllerConfig(name: string, edit: (text: string) => string, extra?: (dir: string) => void): string {
  const dir = join(scratch, name);
  mkdirSync(dir, { recursive: true });
  extra?.(dir);
  const file = join(dir, 'federation.yaml');
  writeFileSync(file, edit(readFileSync(federation.controller?.file as string, 'utf8')));
  return file;
}

/** A static federation of one cluster `name`, its cluster file edited; returns the file. */
async function staticCluster(name: string, edit: (text: string) => string, extra?: (dir: string) => void): Promise<string> {
  const fed = await LocalFederation.create([{ name, region: 'r1', zone: 'z1' }]);
  cleanups.push(() => rmSync(fed.dir, { recursive: true, force: true }));
  const file = fed.cluster(name).file;
  extra?.(fed.dir);
  writeFileSync(file, edit(readFileSync(file, 'utf8')));
  return file;
}

const cleanups: Array<() => void> = [];

interface Row {
  name: string;
  /** Prepares what the row needs and returns the command line and the exact line expected on stderr. */
  setup: () => Promise<{ args: string[]; expected: string }>;
  exitCode: number;
}

const rows: Row[] = [
  {
    name: 'status against a closed port',
    setup: async () => ({
      args: ['status', '--controller', `127.0.0.1:${closedPort}`, '--credentials', adminCredentials()],
      expected: `fedgate: nothing listens at 127.0.0.1:${closedPort} (connection refused): start the controller ("fedgate controller") or ${API_HINT} (FEDGATE_ERR_CONTROLLER_UNREACHABLE)`,
    }),
    exitCode: 1,
  },
  {
    name: "policy list against the controller's join port",
    setup: async () => {
      const address = `127.0.0.1:${federation.controller?.ports.join}`;
      return {
        args: ['policy', 'list', '--controller', address, '--credentials', adminCredentials()],
        expected: `fedgate: ${address} answers gRPC but has no Admin API: it is the controller's join port (spec.controller.joinListen); ${API_HINT} (FEDGATE_ERR_WRONG_PORT)`,
      };
    },
    exitCode: 1,
  },
  {
    name: "token create against the controller's admin HTTP port",
    setup: async () => {
      const address = `127.0.0.1:${federation.controller?.ports.admin}`;
      return {
        args: ['token', 'create', '--cluster', 'east', '--controller', address, '--credentials', adminCredentials()],
        expected: `fedgate: ${address} is the controller's admin HTTP port (spec.controller.admin), not its API: use --controller ${api()} (FEDGATE_ERR_WRONG_PORT)`,
      };
    },
    exitCode: 1,
  },
  {
    name: "status against a gateway's inbound port",
    setup: async () => {
      const address = `127.0.0.1:${federation.cluster('east').ports.inbound}`;
      return {
        args: ['status', '--controller', address, '--credentials', adminCredentials()],
        expected: `fedgate: ${address} is the inbound port of cluster east's gateway (spiffe://east.test.internal/fedgate/gateway/east), not the controller (spiffe://test.internal/fedgate/controller); ${API_HINT} (FEDGATE_ERR_WRONG_PORT)`,
      };
    },
    exitCode: 1,
  },
  {
    name: "status against a gateway's outbound port",
    setup: async () => {
      const address = `127.0.0.1:${federation.cluster('east').ports.outbound}`;
      return {
        args: ['status', '--controller', address, '--credentials', adminCredentials()],
        expected: `fedgate: ${address} speaks plain HTTP (answered 404), not the controller's TLS API (a metrics or admin port, or a gateway's outbound port?): ${API_HINT} (FEDGATE_ERR_WRONG_PORT)`,
      };
    },
    exitCode: 1,
  },
  {
    name: 'policy list against a plain HTTP server',
    setup: async () => ({
      args: ['policy', 'list', '--controller', `127.0.0.1:${httpPort}`, '--credentials', adminCredentials()],
      expected: `fedgate: 127.0.0.1:${httpPort} speaks plain HTTP (answered 200), not the controller's TLS API (a metrics or admin port, or a gateway's outbound port?): ${API_HINT} (FEDGATE_ERR_WRONG_PORT)`,
    }),
    exitCode: 1,
  },
  {
    name: 'token create against a TLS server with an unrelated certificate',
    setup: async () => ({
      args: ['token', 'create', '--cluster', 'east', '--controller', `127.0.0.1:${unrelatedTlsPort}`, '--credentials', adminCredentials()],
      expected: `fedgate: 127.0.0.1:${unrelatedTlsPort} is a TLS server for "CN=crafted" (URI:https://www.example.com/), not the fedgate controller (spiffe://test.internal/fedgate/controller); ${API_HINT} (FEDGATE_ERR_WRONG_PORT)`,
    }),
    exitCode: 1,
  },
  {
    name: "clock skew: the controller's certificate is not valid yet by this machine's clock",
    setup: async () => {
      const from = at(2 * HOUR);
      const port = await tlsServer(craftLeaf({ caDir: controllerCa(), uris: ['spiffe://test.internal/fedgate/controller'], notBefore: from, notAfter: at(3 * HOUR) }));
      return {
        args: ['status', '--controller', `127.0.0.1:${port}`, '--credentials', adminCredentials()],
        expected: `fedgate: the controller's certificate at 127.0.0.1:${port} is valid from ${iso(from)}, 2h ahead of this machine's clock: the clocks of this machine and the controller differ by at least 2h; correct the clock (NTP) on the one that is wrong (FEDGATE_ERR_CLOCK_SKEW)`,
      };
    },
    exitCode: 1,
  },
  {
    name: "clock skew: the controller's certificate expired by this machine's clock",
    setup: async () => {
      const to = at(-90 * 60_000);
      const port = await tlsServer(craftLeaf({ caDir: controllerCa(), uris: ['spiffe://test.internal/fedgate/controller'], notBefore: at(-3 * HOUR), notAfter: to }));
      return {
        args: ['policy', 'list', '--controller', `127.0.0.1:${port}`, '--credentials', adminCredentials()],
        expected: `fedgate: the controller's certificate at 127.0.0.1:${port} expired at ${iso(to)}, 1h30m ago by this machine's clock: the clocks of this machine and the controller differ by at least 1h30m; correct the clock (NTP) on the one that is wrong (FEDGATE_ERR_CLOCK_SKEW)`,
      };
    },
    exitCode: 1,
  },
  {
    name: 'missing operator credentials',
    setup: async () => {
      const dir = join(scratch, 'no-credentials');
      return {
        args: ['status', '--controller', api(), '--credentials', dir],
        expected: `fedgate: no admin credentials in ${dir} (missing tls.crt, tls.key, ca.crt): the controller writes them to <pkiDir>/admin on first start; point --credentials at that directory or at one from "fedgate ca issue" (FEDGATE_ERR_CREDENTIALS_MISSING)`,
      };
    },
    exitCode: 1,
  },
  {
    name: 'expired operator credentials',
    setup: async () => {
      const to = at(-HOUR);
      const dir = credentials('expired', craftLeaf({ caDir: controllerCa(), uris: ['spiffe://test.internal/fedgate/admin/operator'], notBefore: at(-3 * HOUR), notAfter: to }), join(controllerCa(), 'ca.crt'));
      return {
        args: ['policy', 'list', '--controller', api(), '--credentials', dir],
        expected: `fedgate: the operator certificate ${dir}/tls.crt expired at ${iso(to)}, 1h ago by this machine's clock: renew it (a controller restart rewrites <pkiDir>/admin when less than half its lifetime is left) or issue one with "fedgate ca issue --ca <controller pkiDir> --spiffe-id spiffe://test.internal/fedgate/admin/operator --out ${dir}" (FEDGATE_ERR_CREDENTIALS_EXPIRED)`,
      };
    },
    exitCode: 1,
  },
  {
    name: 'clock skew: operator credentials not valid yet by this machine\'s clock',
    setup: async () => {
      const from = at(HOUR);
      const dir = credentials('not-yet-valid', craftLeaf({ caDir: controllerCa(), uris: ['spiffe://test.internal/fedgate/admin/operator'], notBefore: from, notAfter: at(3 * HOUR) }), join(controllerCa(), 'ca.crt'));
      return {
        args: ['token', 'create', '--cluster', 'east', '--controller', api(), '--credentials', dir],
        expected: `fedgate: the operator certificate ${dir}/tls.crt is valid from ${iso(from)}, 1h ahead of this machine's clock: this machine's clock is at least 1h behind the controller's that issued it; correct the clock (NTP) on one of them (FEDGATE_ERR_CLOCK_SKEW)`,
      };
    },
    exitCode: 1,
  },
  {
    name: "credentials from another federation's CA",
    setup: async () => {
      const ca = join(scratch, 'other-federation-ca');
      PkiDirectory.init(ca, { trustDomain: 'other.internal' });
      const dir = credentials('other-federation', craftLeaf({ caDir: ca, uris: ['spiffe://other.internal/fedgate/admin/operator'] }), join(ca, 'ca.crt'));
      return {
        args: ['status', '--controller', api(), '--credentials', dir],
        expected: `fedgate: ${api()} is the controller of trust domain "test.internal", but the credentials in ${dir} are from another CA ("O=fedgate, CN=fedgate CA other.internal" (URI:spiffe://other.internal)): use the operator credentials of this controller (<its pkiDir>/admin) (FEDGATE_ERR_CREDENTIALS_UNTRUSTED)`,
      };
    },
    exitCode: 1,
  },
  {
    name: 'credentials from another CA of the same trust domain (a re-created controller CA)',
    setup: async () => {
      const ca = join(scratch, 'recreated-ca');
      PkiDirectory.init(ca, { trustDomain: 'test.internal' });
      const dir = credentials('recreated', craftLeaf({ caDir: ca, uris: ['spiffe://test.internal/fedgate/admin/operator'] }), join(ca, 'ca.crt'));
      return {
        args: ['policy', 'list', '--controller', api(), '--credentials', dir],
        expected: `fedgate: ${api()} is the controller of trust domain "test.internal", but the credentials in ${dir} are from another CA ("O=fedgate, CN=fedgate CA test.internal" (URI:spiffe://test.internal)): use the operator credentials of this controller (<its pkiDir>/admin) (FEDGATE_ERR_CREDENTIALS_UNTRUSTED)`,
      };
    },
    exitCode: 1,
  },
  {
    name: 'credential files from two different CAs',
    setup: async () => {
      const ca = join(scratch, 'mixed-ca');
      PkiDirectory.init(ca, { trustDomain: 'test.internal' });
      const dir = credentials('mixed', craftLeaf({ caDir: ca, uris: ['spiffe://test.internal/fedgate/admin/operator'] }), join(controllerCa(), 'ca.crt'));
      return {
        args: ['token', 'create', '--cluster', 'east', '--controller', api(), '--credentials', dir],
        expected: `fedgate: ${dir}/tls.crt is not issued by ${dir}/ca.crt ("O=fedgate, CN=fedgate controller CA test.internal" (URI:spiffe://test.internal)): the files come from different CAs; use the three files the controller wrote to <pkiDir>/admin together (FEDGATE_ERR_CREDENTIALS_UNTRUSTED)`,
      };
    },
    exitCode: 1,
  },
  {
    name: 'token create with an invalid --ttl (usage)',
    setup: async () => ({
      args: ['token', 'create', '--cluster', 'east', '--ttl', 'soon', '--controller', api(), '--credentials', adminCredentials()],
      expected: 'fedgate: --ttl: invalid duration "soon" (use e.g. 500ms, 30s, 5m, 1h30m, 7d)',
    }),
    exitCode: 2,
  },
  {
    name: 'controller whose API address is in use',
    setup: async () => {
      const file = controllerConfig('busy-api', (text) => text.replace(/ listen: 127\.0\.0\.1:\d+/, ` listen: 127.0.0.1:${httpPort}`));
      return {
        args: ['controller', '--config', file],
        expected: `fedgate: cannot listen on 127.0.0.1:${httpPort} (spec.controller.listen in ${file}): the address is already in use by another process; stop it, or set spec.controller.listen to a free port (FEDGATE_ERR_ADDRESS_IN_USE)`,
      };
    },
    exitCode: 1,
  },
  {
    name: 'controller whose admin address is in use (by the running controller)',
    setup: async () => {
      const busy = `127.0.0.1:${federation.controller?.ports.admin}`;
      const [apiPort, joinPort] = (await freePorts(2)) as [number, number];
      const file = controllerConfig('busy-admin', (text) =>
        text
          .replace(/ listen: 127\.0\.0\.1:\d+/, ` listen: 127.0.0.1:${apiPort}`)
          .replace(/joinListen: 127\.0\.0\.1:\d+/, `joinListen: 127.0.0.1:${joinPort}`)
          .replace(/admin: 127\.0\.0\.1:\d+/, `admin: ${busy}`),
      );
      return {
        args: ['controller', '--config', file],
        expected: `fedgate: cannot listen on ${busy} (spec.controller.admin in ${file}): the address is already in use by another process; stop it, or set spec.controller.admin to a free port (FEDGATE_ERR_ADDRESS_IN_USE)`,
      };
    },
    exitCode: 1,
  },
  {
    name: 'gateway whose inbound address is in use',
    setup: async () => {
      const file = await staticCluster('west', (text) => text.replace(/inbound: 127\.0\.0\.1:\d+/, `inbound: 127.0.0.1:${httpPort}`));
      return {
        args: ['gateway', '--config', file],
        expected: `fedgate: cannot listen on 127.0.0.1:${httpPort} (spec.gateway.inbound in ${file}): the address is already in use by another process; stop it, or set spec.gateway.inbound to a free port (FEDGATE_ERR_ADDRESS_IN_USE)`,
      };
    },
    exitCode: 1,
  },
  {
    name: "controller whose pki dir cannot be created (a file is in the way; chmod does not stop root)",
    setup: async () => {
      const [apiPort, joinPort, adminPort] = (await freePorts(3)) as [number, number, number];
      let pki = '';
      const file = controllerConfig(
        'pki-file',
        (text) =>
          text
            .replace(/ listen: 127\.0\.0\.1:\d+/, ` listen: 127.0.0.1:${apiPort}`)
            .replace(/joinListen: 127\.0\.0\.1:\d+/, `joinListen: 127.0.0.1:${joinPort}`)
            .replace(/admin: 127\.0\.0\.1:\d+/, `admin: 127.0.0.1:${adminPort}`),
        (dir) => {
          pki = join(dir, 'pki');
          writeFileSync(pki, 'not a directory\n');
        },
      );
      const pkiDir = join(pki, 'controller');
      return {
        args: ['controller', '--config', file],
        expected: `fedgate: ${pkiDir} (spec.controller.pkiDir in ${file}) is not usable: a file is in the way of a directory (ENOTDIR on ${pkiDir}); make it a writable directory or set spec.controller.pkiDir to one (FEDGATE_ERR_PKI_DIR_UNUSABLE)`,
      };
    },
    exitCode: 1,
  },
  {
    name: 'gateway whose state dir cannot be created (a file is in the way)',
    setup: async () => {
      let stateDir = '';
      const file = await staticCluster(
        'north',
        (text) => text,
        (dir) => {
          mkdirSync(join(dir, 'state'), { recursive: true });
          stateDir = join(dir, 'state', 'north');
          writeFileSync(stateDir, 'not a directory\n');
        },
      );
      return {
        args: ['gateway', '--config', file],
        expected: `fedgate: ${stateDir} (spec.gateway.stateDir in ${file}) is not usable: a file is in the way of a directory (EEXIST on ${stateDir}); make it a writable directory or set spec.gateway.stateDir to one (FEDGATE_ERR_STATE_DIR_UNUSABLE)`,
      };
    },
    exitCode: 1,
  },
  {
    name: 'gateway whose state dir is read-only (a read-only bind mount as root, chmod otherwise)',
    setup: async () => {
      let stateDir = '';
      const file = await staticCluster(
        'reader',
        (text) => text,
        (dir) => {
          stateDir = join(dir, 'state', 'reader');
          mkdirSync(stateDir, { recursive: true });
          if (process.getuid?.() === 0) {
            execFileSync('mount', ['--bind', '-o', 'ro', stateDir, stateDir]);
            cleanups.unshift(() => execFileSync('umount', [stateDir]));
          } else {
            chmodSync(stateDir, 0o555);
          }
        },
      );
      const [code, what] = process.getuid?.() === 0 ? ['EROFS', 'read-only file system'] : ['EACCES', 'permission denied'];
      return {
        args: ['gateway', '--config', file],
        expected: `fedgate: ${stateDir} (spec.gateway.stateDir in ${file}) is not usable: ${what} (${code} on ${stateDir}); make it a writable directory or set spec.gateway.stateDir to one (FEDGATE_ERR_STATE_DIR_UNUSABLE)`,
      };
    },
    exitCode: 1,
  },
  {
    name: 'gateway whose pki dir is a file',
    setup: async () => {
      let pkiDir = '';
      const file = await staticCluster(
        'keyless',
        (text) => text,
        (dir) => {
          pkiDir = join(dir, 'pki', 'keyless');
          rmSync(pkiDir, { recursive: true });
          writeFileSync(pkiDir, 'not a directory\n');
        },
      );
      return {
        args: ['gateway', '--config', file],
        expected: `fedgate: cluster keyless has no CA in ${pkiDir}; create it with "fedgate ca init --trust-domain keyless.test.internal --out ${pkiDir}", or set spec.gateway.certificateSource: signer to get certificates from "fedgate ca serve" (FEDGATE_ERR_CA_NOT_FOUND)`,
      };
    },
    exitCode: 1,
  },
  {
    name: 'gateway with a missing config file',
    setup: async () => {
      const file = join(scratch, 'clusters', 'nowhere.yaml');
      return {
        args: ['gateway', '--config', file],
        expected: `fedgate: ${file}: file not found; give --config the path of the cluster file (e.g. federation-config/clusters/us-east.yaml) (FEDGATE_ERR_CONFIG_NOT_FOUND)`,
      };
    },
    exitCode: 1,
  },
  {
    name: 'controller whose config file is a directory',
    setup: async () => ({
      args: ['controller', '--config', federation.dir],
      expected: `fedgate: ${federation.dir} is a directory, not a file; give --config the path of federation.yaml (e.g. federation-config/federation.yaml) (FEDGATE_ERR_CONFIG_NOT_FOUND)`,
    }),
    exitCode: 1,
  },
  {
    name: 'join with a missing token file',
    setup: async () => {
      const tokenFile = join(scratch, 'tokens', 'south');
      return {
        args: ['join', '--config', federation.cluster('south').file, '--token-file', tokenFile],
        expected: `fedgate: token file ${tokenFile} (--token-file) not found: create a token with "fedgate token create --cluster south --out ${tokenFile}" where the controller runs, and copy it here (FEDGATE_ERR_TOKEN_FILE_NOT_FOUND)`,
      };
    },
    exitCode: 1,
  },
];

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'fedgate-errors-'));
  federation = await LocalFederation.create(
    [
      { name: 'east', region: 'r1', zone: 'z1' },
      { name: 'south', region: 'r2', zone: 'z2' },
      { name: 'far', region: 'r3', zone: 'z3' },
    ],
    { controller: {} },
  );
  await federation.startController();
  await federation.start('east');
  [closedPort, httpPort] = (await freePorts(2)) as [number, number];
  const http = createHttpServer((_req, res) => res.end('hello'));
  await new Promise<void>((resolve) => http.listen(httpPort, '127.0.0.1', resolve));
  servers.push(http);
  const unrelated = join(scratch, 'unrelated-ca');
  PkiDirectory.init(unrelated, { trustDomain: 'unrelated.example' });
  unrelatedTlsPort = await tlsServer(craftLeaf({ caDir: unrelated, uris: ['https://www.example.com/'] }));
}, 60_000);

afterAll(async () => {
  for (const server of servers) server.close();
  for (const cleanup of cleanups) cleanup();
  await federation?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

test(`the error table: ${rows.length} rows, each one line with what happened, what to do and a stable code`, async () => {
  expect(rows.length).toBeGreaterThanOrEqual(20);
  const failures: string[] = [];
  // Four at a time: each row is a process start-up, and the machine has two cores.
  for (let i = 0; i < rows.length; i += 4) {
    await Promise.all(
      rows.slice(i, i + 4).map(async (row) => {
        const { args, expected } = await row.setup();
        const result = await runFedgate(args, { env: { FEDGATE_LOG_LEVEL: 'warn' } });
        const lines = result.stderr.split('\n').filter((line) => line.startsWith('fedgate: '));
        const problems = [
          ...(result.code === row.exitCode ? [] : [`exit code ${result.code}, expected ${row.exitCode}`]),
          ...(lines.length === 1 && lines[0] === expected ? [] : [`printed ${JSON.stringify(lines)}\n    expected ${JSON.stringify(expected)}`]),
          ...(/^\s+at /m.test(result.stderr) ? ['printed a stack trace'] : []),
          // Besides that line only the process's JSON log lines (warnings and errors) may appear.
          ...result.stderr
            .split('\n')
            .filter((line) => line.trim() !== '' && !line.startsWith('fedgate: ') && !line.startsWith('{'))
            .map((line) => `printed a stray line: ${line}`),
        ];
        if (problems.length > 0) failures.push(`${row.name}:\n  ${problems.join('\n  ')}\n  stderr: ${result.stderr.trim()}`);
      }),
    );
  }
  expect(failures).toEqual([]);
}, 120_000);

test('join with an expired token, then with a token already used', async () => {
  const south = federation.cluster('south').file;
  const expired = await federation.admin().call.createToken({ cluster: 'south', ttlMs: 1 });
  const first = await runFedgate(['join', '--config', south, '--token', expired.token]);
  expect({ code: first.code, stderr: first.stderr.trim() }).toEqual({
    code: 1,
    stderr: `fedgate: join refused: join token expired at ${new Date(expired.expiresAtMs).toISOString()}; create a new one with "fedgate token create" (FEDGATE_ERR_TOKEN_EXPIRED)`,
  });
  const { token } = await federation.admin().call.createToken({ cluster: 'south', ttlMs: 600_000 });
  const joined = await runFedgate(['join', '--config', south, '--token', token]);
  expect({ code: joined.code, stderr: joined.stderr }).toEqual({ code: 0, stderr: '' });
  const again = await runFedgate(['join', '--config', south, '--token', token, '--rejoin']);
  const usedAt = /already used at (\S+);/.exec(again.stderr)?.[1] ?? 'no time';
  expect(Date.parse(usedAt)).toBeLessThanOrEqual(Date.now());
  expect({ code: again.code, stderr: again.stderr.trim() }).toEqual({
    code: 1,
    stderr: `fedgate: join refused: join token was already used at ${usedAt}; tokens are single-use: create a new one with "fedgate token create --cluster south" (FEDGATE_ERR_TOKEN_USED)`,
  });
}, 30_000);

test('join while the controller is down (last: it stops the controller)', async () => {
  const { token } = await federation.admin().call.createToken({ cluster: 'far', ttlMs: 600_000 });
  await federation.controller?.process?.stop();
  const admin = `127.0.0.1:${federation.controller?.ports.admin}`;
  const result = await runFedgate(['join', '--config', federation.cluster('far').file, '--token', token]);
  expect({ code: result.code, stderr: result.stderr.trim() }).toEqual({
    code: 1,
    stderr: `fedgate: cannot fetch the controller CA from ${admin}: connect ECONNREFUSED ${admin}: start the controller, or, when its admin port (from the join token) is not reachable from here, give --controller-ca with its CA certificate (<controller pkiDir>/ca.crt) (FEDGATE_ERR_CONTROLLER_UNREACHABLE)`,
  });
}, 30_000);
