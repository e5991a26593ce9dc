/**
 * A fake Kubernetes API server: a real HTTP server on 127.0.0.1 that speaks the list/watch protocol
 * to the real @kubernetes/client-node, for the four resources fedgate's discovery uses (Services,
 * EndpointSlices, ServiceExports, ServiceImports).
 *
 * What it models, because the provider depends on it:
 * - one resourceVersion counter for everything (as etcd's revision), lists stamped with it;
 * - watches from a resourceVersion replay the retained history, then stream live events as
 *   newline-delimited JSON; a watch without one starts with synthetic ADDED events;
 * - a retained window: a watch from a resourceVersion older than the window gets an ERROR event
 *   with a 410 Status (what kube-apiserver sends after compaction), and a list at such a version
 *   an HTTP 410;
 * - BOOKMARK events when the client asks for them (`allowWatchBookmarks=true`), `timeoutSeconds`;
 * - label selectors on lists and watches, with label changes turned into ADDED/DELETED the way the
 *   real server does for a selector-filtered watch;
 * - create/replace/merge-patch/JSON-patch/delete, the status subresource (writes to the main
 *   resource keep the status, writes to /status change only the status), no-op writes that do not
 *   bump the resourceVersion, `metadata.generation` bumped on spec changes, 409 on a stale
 *   resourceVersion precondition;
 * - bearer-token authentication (401 without it);
 * - the TokenReview API (authentication.k8s.io/v1, create only) for ServiceAccount tokens the test
 *   mints with issueServiceAccountToken(): audience intersection, expiry, revocation, the
 *   pod-name extra of bound tokens, and the answers kube-apiserver gives when they do not match.
 *
 * Test hooks: apply/remove objects directly (any shape, malformed included), dropWatches(),
 * expireHistory(), failNext() to inject errors, and the request log.
 */
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    generation?: number;
    creationTimestamp?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

export interface FakeResource {
  plural: string;
  group: string;
  version: string;
  kind: string;
  /** Writes to the main resource keep the status; /status writes change only the status. */
  statusSubresource: boolean;
}

export const FAKE_RESOURCES: readonly FakeResource[] = [
  { plural: 'services', group: '', version: 'v1', kind: 'Service', statusSubresource: true },
  { plural: 'endpointslices', group: 'discovery.k8s.io', version: 'v1', kind: 'EndpointSlice', statusSubresource: false },
  { plural: 'serviceexports', group: 'multicluster.x-k8s.io', version: 'v1alpha1', kind: 'ServiceExport', statusSubresource: true },
  { plural: 'serviceimports', group: 'multicluster.x-k8s.io', version: 'v1alpha1', kind: 'ServiceImport', statusSubresource: true },
];

export type ResourceName = 'services' | 'endpointslices' | 'serviceexports' | 'serviceimports';

export interface RequestRecord {
  method: string;
  path: string;
  query: Record<string, string>;
  resource?: string;
  namespace?: string;
  name?: string;
  subresource?: string;
  watch: boolean;
  contentType?: string;
  body?: unknown;
  status?: number;
}

interface HistoryEvent {
  rv: number;
  plural: string;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: KubeObject;
  previous?: KubeObject;
}

interface Watcher {
  plural: string;
  namespace?: string;
  selector: LabelRequirement[];
  res: ServerResponse;
  bookmarks: boolean;
  timeout?: NodeJS.Timeout;
  bookmarkTimer?: NodeJS.Timeout;
}

interface Fault {
  match: FaultMatch;
  remaining: number;
  status: number;
}

export interface FaultMatch {
  method?: string;
  resource?: string;
  watch?: boolean;
  subresource?: string;
}

interface LabelRequirement {
  key: string;
  op: '=' | '!=' | 'exists' | '!exists' | 'in' | 'notin';
  values: string[];
}

interface Route {
  resource: FakeResource;
  namespace?: string;
  name?: string;
  subresource?: string;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

export function apiVersionOf(resource: FakeResource): string {
  return resource.group === '' ? resource.version : `${resource.group}/${resource.version}`;
}

function keyOf(namespace: string | undefined, name: string): string {
  return `${namespace ?? ''}/${name}`;
}

function clone<T>(value: T): T {
  return structuredClone(value);
}

/** JSON with sorted keys, so that two writes of the same object compare equal. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (isPlainObject(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v));
}

/** Everything but metadata and status: what `metadata.generation` tracks. */
function specPart(object: KubeObject): string {
  const { metadata: _m, status: _s, ...rest } = object;
  return canonical(rest);
}

function withoutVolatile(object: KubeObject): string {
  const { resourceVersion: _rv, managedFields: _mf, ...metadata } = object.metadata;
  return canonical({ ...object, metadata });
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** RFC 7386 JSON merge patch. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isPlainObject(patch)) return clone(patch);
  const out: Record<string, unknown> = isPlainObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else out[key] = mergePatch(out[key], value);
  }
  return out;
}

function pointer(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw new HttpError(422, 'Invalid', `JSON patch path "${path}" must start with "/"`);
  return path
    .slice(1)
    .split('/')
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** RFC 6902 JSON patch: add, remove, replace, test (what clients send for status and labels). */
function jsonPatch(target: unknown, operations: unknown): unknown {
  if (!Array.isArray(operations)) throw new HttpError(400, 'BadRequest', 'a JSON patch must be an array of operations');
  let doc = clone(target);
  for (const op of operations as Array<{ op?: string; path?: string; value?: unknown }>) {
    const parts = pointer(op.path ?? '');
    if (parts.length === 0) {
      if (op.op === 'test' && JSON.stringify(doc) !== JSON.stringify(op.value)) throw new HttpError(422, 'Invalid', 'JSON patch test failed at ""');
      if (op.op === 'add' || op.op === 'replace') doc = clone(op.value);
      continue;
    }
    let parent: unknown = doc;
    for (const part of parts.slice(0, -1)) {
      parent = Array.isArray(parent) ? parent[Number(part)] : (parent as Record<string, unknown> | undefined)?.[part];
      if (parent === undefined || parent === null || typeof parent !== 'object') throw new HttpError(422, 'Invalid', `JSON patch path "${op.path}" does not exist`);
    }
    const last = parts[parts.length - 1] as string;
    const container = parent as Record<string, unknown> | unknown[];
    switch (op.op) {
      case 'add':
        if (Array.isArray(container)) container.splice(last === '-' ? container.length : Number(last), 0, clone(op.value));
        else container[last] = clone(op.value);
        break;
      case 'replace':
        if (Array.isArray(container)) container[Number(last)] = clone(op.value);
        else {
          if (!(last in container)) throw new HttpError(422, 'Invalid', `JSON patch replace of missing "${op.path}"`);
          container[last] = clone(op.value);
        }
        break;
      case 'remove':
        if (Array.isArray(container)) container.splice(Number(last), 1);
        else {
          if (!(last in container)) throw new HttpError(422, 'Invalid', `JSON patch remove of missing "${op.path}"`);
          delete container[last];
        }
        break;
      case 'test': {
        const current = Array.isArray(container) ? container[Number(last)] : container[last];
        if (JSON.stringify(current) !== JSON.stringify(op.value)) throw new HttpError(422, 'Invalid', `JSON patch test failed at "${op.path}"`);
        break;
      }
      default:
        throw new HttpError(422, 'Invalid', `JSON patch operation "${String(op.op)}" is not supported by the fake API server`);
    }
  }
  return doc;
}

function splitSelector(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of text) {
    if (ch === '(') depth += 1;
    if (ch === ')') depth -= 1;
    if (ch === ',' && depth === 0) {
      parts.push(current);
      current = '';
    } else current += ch;
  }
  if (current !== '') parts.push(current);
  return parts.map((p) => p.trim()).filter((p) => p !== '');
}

export function parseLabelSelector(text: string | undefined): LabelRequirement[] {
  if (!text) return [];
  return splitSelector(text).map((term) => {
    let m = /^([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(term);
    if (m) return { key: m[1] as string, op: m[2] as 'in' | 'notin', values: (m[3] as string).split(',').map((v) => v.trim()) };
    m = /^([^\s!=]+)\s*(==|=|!=)\s*(.*)$/.exec(term);
    if (m) return { key: m[1] as string, op: m[2] === '!=' ? '!=' : '=', values: [(m[3] as string).trim()] };
    m = /^!([^\s!=]+)$/.exec(term);
    if (m) return { key: m[1] as string, op: '!exists', values: [] };
    if (/^[^\s!=(),]+$/.test(term)) return { key: term, op: 'exists', values: [] };
    throw new HttpError(400, 'BadRequest', `unable to parse requirement: "${term}"`);
  });
}

function matchesSelector(object: KubeObject | undefined, selector: LabelRequirement[]): boolean {
  if (!object) return false;
  const labels = isPlainObject(object.metadata?.labels) ? (object.metadata.labels as Record<string, string>) : {};
  return selector.every((r) => {
    const value = labels[r.key];
    switch (r.op) {
      case '=':
        return value === r.values[0];
      case '!=':
        return value !== r.values[0];
      case 'exists':
        return value !== undefined;
      case '!exists':
        return value === undefined;
      case 'in':
        return value !== undefined && r.values.includes(value);
      case 'notin':
        return value === undefined || !r.values.includes(value);
    }
    return false;
  });
}

/** A ServiceAccount token the fake API server knows, as the TokenRequest API would have minted it. */
export interface FakeServiceAccountToken {
  namespace: string;
  serviceAccount: string;
  audiences: string[];
  expiresAt: number;
  /** A token bound to a pod (projected volume) carries its name in `user.extra`. */
  podName?: string;
}

/** The audience of tokens that do not name one: the API server itself. */
export const API_SERVER_AUDIENCE = 'https://kubernetes.default.svc.cluster.local';

export interface FakeKubeApiOptions {
  /** Events kept for watches that resume; older resourceVersions get 410 Gone. */
  historyLimit?: number;
  /** How often watches that asked for bookmarks get one. */
  bookmarkIntervalMs?: number;
  /** Bearer token clients must present; the kubeconfig written by writeKubeconfig carries it. */
  token?: string;
}

export class FakeKubeApi {
  /** Every request, in arrival order, with the status it got. */
  readonly requests: RequestRecord[] = [];
  private readonly objects = new Map<string, Map<string, KubeObject>>();
  private history: HistoryEvent[] = [];
  private resourceVersion = 1;
  /** Watches from a resourceVersion below this get 410 Gone. */
  private compactedAt = 0;
  private readonly watchers = new Set<Watcher>();
  private readonly sockets = new Set<Socket>();
  private faults: Fault[] = [];
  private readonly serviceAccountTokens = new Map<string, FakeServiceAccountToken>();
  private readonly historyLimit: number;
  private readonly bookmarkIntervalMs: number;
  readonly token: string;

  private constructor(
    private readonly server: Server,
    options: FakeKubeApiOptions,
  ) {
    this.historyLimit = options.historyLimit ?? 100_000;
    this.bookmarkIntervalMs = options.bookmarkIntervalMs ?? 1000;
    this.token = options.token ?? 'fake-token';
    for (const r of FAKE_RESOURCES) this.objects.set(r.plural, new Map());
  }

  static async start(options: FakeKubeApiOptions = {}): Promise<FakeKubeApi> {
    const server = createServer();
    const api = new FakeKubeApi(server, options);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => api.handle(req, res));
    server.on('connection', (socket) => {
      api.sockets.add(socket);
      socket.on('close', () => api.sockets.delete(socket));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    return api;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The current resourceVersion (what a list now would carry). */
  get currentResourceVersion(): number {
    return this.resourceVersion;
  }

  /**
   * Writes a kubeconfig for this server. Plain HTTP: client-node only allows it with
   * `insecure-skip-tls-verify`, which is what the file says.
   */
  writeKubeconfig(file: string, options: { context?: string; namespace?: string } = {}): string {
    const context = options.context ?? 'fake';
    const config = {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'fake-cluster', cluster: { server: this.url, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'fake-user', user: { token: this.token } }],
      contexts: [{ name: context, context: { cluster: 'fake-cluster', user: 'fake-user', ...(options.namespace ? { namespace: options.namespace } : {}) } }],
      'current-context': context,
    };
    writeFileSync(file, JSON.stringify(config, null, 2));
    return file;
  }

  // ---- test hooks -------------------------------------------------------------------------

  /** Creates or replaces an object wholesale (status included), as if a controller wrote it. */
  apply(object: KubeObject): KubeObject {
    const resource = this.resourceForObject(object);
    const copy = clone(object);
    copy.apiVersion ??= apiVersionOf(resource);
    copy.kind ??= resource.kind;
    const stored = this.store(resource, copy, { keepStatus: false });
    return clone(stored);
  }

  /** Deletes an object; false when it did not exist. */
  remove(plural: ResourceName, namespace: string, name: string): boolean {
    const resource = this.resource(plural);
    const existing = this.objects.get(plural)?.get(keyOf(namespace, name));
    if (!existing) return false;
    this.deleteStored(resource, existing);
    return true;
  }

  get(plural: ResourceName, namespace: string, name: string): KubeObject | undefined {
    const found = this.objects.get(plural)?.get(keyOf(namespace, name));
    return found ? clone(found) : undefined;
  }

  list(plural: ResourceName, namespace?: string): KubeObject[] {
    return [...(this.objects.get(plural)?.values() ?? [])].filter((o) => namespace === undefined || o.metadata.namespace === namespace).map(clone);
  }

  /** Open watch connections (of one resource, or all). */
  watchCount(plural?: ResourceName): number {
    return [...this.watchers].filter((w) => plural === undefined || w.plural === plural).length;
  }

  /**
   * Drops every open watch. `destroy` resets the connections (a network failure as the client
   * sees it); `end` closes them cleanly (an API server restart or watch timeout).
   */
  dropWatches(mode: 'destroy' | 'end' = 'destroy'): number {
    const count = this.watchers.size;
    for (const watcher of [...this.watchers]) {
      this.closeWatcher(watcher);
      if (mode === 'destroy') watcher.res.socket?.destroy();
      else watcher.res.end();
    }
    return count;
  }

  /** Forgets the event history, as etcd compaction does: resuming from any older version gets 410 Gone. */
  expireHistory(): void {
    this.history = [];
    this.compactedAt = this.resourceVersion;
  }

  /** Sends a BOOKMARK to every watch that allows them. */
  bookmark(): void {
    for (const watcher of this.watchers) if (watcher.bookmarks) this.sendBookmark(watcher);
  }

  /**
   * Mints a ServiceAccount token (opaque here; a real one is a JWT, which TokenReview callers must
   * not look into anyway). `expiresInMs` defaults to an hour.
   */
  issueServiceAccountToken(options: { namespace: string; serviceAccount: string; audiences?: string[]; expiresInMs?: number; podName?: string }): string {
    const token = `fake-sa-${randomUUID()}`;
    this.serviceAccountTokens.set(token, {
      namespace: options.namespace,
      serviceAccount: options.serviceAccount,
      audiences: options.audiences ?? [API_SERVER_AUDIENCE],
      expiresAt: Date.now() + (options.expiresInMs ?? 3_600_000),
      podName: options.podName,
    });
    return token;
  }

  /** Invalidates every token of a ServiceAccount, as deleting the account (or its pod) does. */
  revokeServiceAccountTokens(namespace: string, serviceAccount: string): number {
    let revoked = 0;
    for (const [token, entry] of this.serviceAccountTokens) {
      if (entry.namespace === namespace && entry.serviceAccount === serviceAccount) {
        this.serviceAccountTokens.delete(token);
        revoked += 1;
      }
    }
    return revoked;
  }

  /** The next `times` requests that match get `status` (a Status body) instead of an answer. */
  failNext(match: FaultMatch, times = 1, status = 500): void {
    this.faults.push({ match, remaining: times, status });
  }

  clearFaults(): void {
    this.faults = [];
  }

  requestsMatching(filter: Partial<Pick<RequestRecord, 'method' | 'resource' | 'namespace' | 'name' | 'subresource' | 'watch'>>): RequestRecord[] {
    return this.requests.filter((r) => Object.entries(filter).every(([k, v]) => r[k as keyof RequestRecord] === v));
  }

  async close(): Promise<void> {
    for (const watcher of [...this.watchers]) this.closeWatcher(watcher);
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // ---- storage ----------------------------------------------------------------------------

  private resource(plural: string): FakeResource {
    const found = FAKE_RESOURCES.find((r) => r.plural === plural);
    if (!found) throw new Error(`the fake API server does not serve "${plural}"`);
    return found;
  }

  private resourceForObject(object: KubeObject): FakeResource {
    const found = FAKE_RESOURCES.find((r) => r.kind === object.kind && (object.apiVersion === undefined || object.apiVersion === apiVersionOf(r)));
    if (!found) throw new Error(`the fake API server does not serve ${object.apiVersion}/${object.kind}`);
    if (!object.metadata?.name) throw new Error(`${object.kind} without metadata.name`);
    return found;
  }

  private nextVersion(): number {
    this.resourceVersion += 1;
    return this.resourceVersion;
  }

  /**
   * Writes an object (create or update) and emits its event. No-op writes change nothing and
   * emit nothing, as on a real server.
   */
  private store(resource: FakeResource, object: KubeObject, options: { keepStatus: boolean; onlyStatus?: boolean }): KubeObject {
    const objects = this.objects.get(resource.plural) as Map<string, KubeObject>;
    const key = keyOf(object.metadata.namespace, object.metadata.name);
    const existing = objects.get(key);
    let next = object;
    if (existing && options.onlyStatus) {
      next = { ...clone(existing), status: object.status };
      if (object.status === undefined) delete next.status;
    } else if (existing && options.keepStatus && resource.statusSubresource) {
      next = { ...object, ...(existing.status === undefined ? {} : { status: clone(existing.status) }) };
      if (existing.status === undefined) delete next.status;
    } else if (!existing && options.keepStatus && resource.statusSubresource) {
      next = { ...object };
      delete next.status;
    }
    next.metadata = {
      ...next.metadata,
      uid: existing?.metadata.uid ?? (next.metadata.uid as string | undefined) ?? randomUUID(),
      creationTimestamp: existing?.metadata.creationTimestamp ?? next.metadata.creationTimestamp ?? new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
      generation: existing ? (existing.metadata.generation ?? 1) + (specPart(existing) === specPart(next) ? 0 : 1) : 1,
    };
    if (existing && withoutVolatile(existing) === withoutVolatile({ ...next, metadata: { ...next.metadata, resourceVersion: existing.metadata.resourceVersion } })) {
      return existing;
    }
    const rv = this.nextVersion();
    next.metadata.resourceVersion = String(rv);
    objects.set(key, next);
    this.emit({ rv, plural: resource.plural, type: existing ? 'MODIFIED' : 'ADDED', object: next, previous: existing });
    return next;
  }

  private deleteStored(resource: FakeResource, existing: KubeObject): KubeObject {
    const objects = this.objects.get(resource.plural) as Map<string, KubeObject>;
    objects.delete(keyOf(existing.metadata.namespace, existing.metadata.name));
    const rv = this.nextVersion();
    const gone = { ...clone(existing), metadata: { ...clone(existing.metadata), resourceVersion: String(rv) } };
    this.emit({ rv, plural: resource.plural, type: 'DELETED', object: gone, previous: existing });
    return gone;
  }

  private emit(event: HistoryEvent): void {
    this.history.push(event);
    if (this.history.length > this.historyLimit) {
      const dropped = this.history.splice(0, this.history.length - this.historyLimit);
      this.compactedAt = (dropped[dropped.length - 1] as HistoryEvent).rv;
    }
    for (const watcher of this.watchers) this.deliver(watcher, event);
  }

  /** What a watcher sees of an event: filtered by namespace, and by selector with label moves. */
  private deliver(watcher: Watcher, event: HistoryEvent): void {
    if (watcher.plural !== event.plural) return;
    if (watcher.namespace !== undefined && event.object.metadata.namespace !== watcher.namespace) return;
    let type: string = event.type;
    if (watcher.selector.length > 0) {
      const now = event.type !== 'DELETED' && matchesSelector(event.object, watcher.selector);
      const before = matchesSelector(event.previous, watcher.selector);
      if (event.type === 'DELETED') {
        if (!before) return;
      } else if (now && !before) type = 'ADDED';
      else if (!now && before) type = 'DELETED';
      else if (!now) return;
    }
    this.writeEvent(watcher, { type, object: event.object });
  }

  private writeEvent(watcher: Watcher, event: { type: string; object: unknown }): void {
    if (watcher.res.writableEnded || watcher.res.destroyed) return;
    watcher.res.write(`${JSON.stringify(event)}\n`);
  }

  private sendBookmark(watcher: Watcher): void {
    const resource = this.resource(watcher.plural);
    this.writeEvent(watcher, { type: 'BOOKMARK', object: { kind: resource.kind, apiVersion: apiVersionOf(resource), metadata: { resourceVersion: String(this.resourceVersion) } } });
  }

  private closeWatcher(watcher: Watcher): void {
    this.watchers.delete(watcher);
    clearTimeout(watcher.timeout);
    clearTimeout(watcher.bookmarkTimer);
  }

  // ---- HTTP -------------------------------------------------------------------------------

  private route(path: string): Route {
    const parts = path.split('/').filter((p) => p !== '');
    let rest: string[];
    let resources: readonly FakeResource[];
    if (parts[0] === 'api' && parts[1] === 'v1') {
      resources = FAKE_RESOURCES.filter((r) => r.group === '');
      rest = parts.slice(2);
    } else if (parts[0] === 'apis' && parts.length >= 3) {
      resources = FAKE_RESOURCES.filter((r) => r.group === parts[1] && r.version === parts[2]);
      rest = parts.slice(3);
    } else throw new HttpError(404, 'NotFound', `the server could not find the requested resource (${path})`);
    let namespace: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
    const resource = resources.find((r) => r.plural === rest[0]);
    if (!resource || rest.length > 3 || (rest.length === 3 && rest[2] !== 'status')) throw new HttpError(404, 'NotFound', `the server could not find the requested resource (${path})`);
    return { resource, namespace, name: rest[1], subresource: rest[2] };
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://fake');
    const query = Object.fromEntries(url.searchParams.entries());
    const record: RequestRecord = { method: req.method ?? 'GET', path: url.pathname, query, watch: query.watch === 'true' || query.watch === '1', contentType: req.headers['content-type'] };
    this.requests.push(record);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      try {
        if (req.headers.authorization !== `Bearer ${this.token}`) throw new HttpError(401, 'Unauthorized', 'Unauthorized');
        if (url.pathname === TOKEN_REVIEW_PATH) {
          record.resource = 'tokenreviews';
          this.tokenReview(req.method ?? 'GET', Buffer.concat(chunks).toString('utf8'), record, res);
          return;
        }
        const route = this.route(url.pathname);
        record.resource = route.resource.plural;
        record.namespace = route.namespace;
        record.name = route.name;
        record.subresource = route.subresource;
        const text = Buffer.concat(chunks).toString('utf8');
        if (text !== '') {
          try {
            record.body = JSON.parse(text);
          } catch {
            throw new HttpError(400, 'BadRequest', 'the request body is not JSON');
          }
        }
        const fault = this.faults.find((f) => f.remaining > 0 && this.faultMatches(f.match, record));
        if (fault) {
          fault.remaining -= 1;
          throw new HttpError(fault.status, fault.status === 410 ? 'Expired' : 'InternalError', `injected failure (${fault.status})`);
        }
        this.dispatch(req.method ?? 'GET', route, query, record, res);
      } catch (error) {
        const e = error instanceof HttpError ? error : new HttpError(500, 'InternalError', (error as Error).message);
        this.sendStatus(res, record, e.status, e.reason, e.message);
      }
    });
  }

  /** POST tokenreviews: what kube-apiserver answers for ServiceAccount tokens. */
  private tokenReview(method: string, text: string, record: RequestRecord, res: ServerResponse): void {
    if (method !== 'POST') throw new HttpError(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource (${method} tokenreviews)`);
    let review: { apiVersion?: unknown; kind?: unknown; spec?: { token?: unknown; audiences?: unknown } };
    try {
      review = JSON.parse(text) as typeof review;
    } catch {
      throw new HttpError(400, 'BadRequest', 'the request body is not JSON');
    }
    record.body = { ...review, spec: { ...review.spec, token: '[redacted]' } };
    if (review.apiVersion !== 'authentication.k8s.io/v1' || review.kind !== 'TokenReview') throw new HttpError(400, 'BadRequest', 'expected an authentication.k8s.io/v1 TokenReview');
    const token = review.spec?.token;
    if (typeof token !== 'string' || token === '') throw new HttpError(422, 'Invalid', 'TokenReview.authentication.k8s.io "" is invalid: spec.token: Required value');
    const fault = this.faults.find((f) => f.remaining > 0 && this.faultMatches(f.match, record));
    if (fault) {
      fault.remaining -= 1;
      throw new HttpError(fault.status, 'InternalError', `injected failure (${fault.status})`);
    }
    const requested = Array.isArray(review.spec?.audiences) && review.spec.audiences.length > 0 ? (review.spec.audiences as string[]) : [API_SERVER_AUDIENCE];
    const entry = this.serviceAccountTokens.get(token);
    const spec = { token: '', audiences: review.spec?.audiences ?? [] };
    let status: Record<string, unknown>;
    if (!entry || entry.expiresAt <= Date.now()) {
      status = { authenticated: false, user: {}, error: '[invalid bearer token, token has been invalidated]' };
    } else {
      const audiences = requested.filter((a) => entry.audiences.includes(a));
      status =
        audiences.length === 0
          ? { authenticated: false, user: {}, error: `[invalid bearer token, token audiences ${JSON.stringify(entry.audiences)} is invalid for the target audiences ${JSON.stringify(requested)}]` }
          : {
              authenticated: true,
              user: {
                username: `system:serviceaccount:${entry.namespace}:${entry.serviceAccount}`,
                uid: randomUUID(),
                groups: ['system:serviceaccounts', `system:serviceaccounts:${entry.namespace}`, 'system:authenticated'],
                ...(entry.podName ? { extra: { 'authentication.kubernetes.io/pod-name': [entry.podName], 'authentication.kubernetes.io/pod-uid': [randomUUID()] } } : {}),
              },
              audiences,
            };
    }
    this.sendJson(res, record, 201, { kind: 'TokenReview', apiVersion: 'authentication.k8s.io/v1', metadata: { creationTimestamp: null }, spec, status });
  }

  private faultMatches(match: FaultMatch, record: RequestRecord): boolean {
    return (
      (match.method === undefined || match.method === record.method) &&
      (match.resource === undefined || match.resource === record.resource) &&
      (match.watch === undefined || match.watch === record.watch) &&
      (match.subresource === undefined || match.subresource === record.subresource)
    );
  }

  private sendJson(res: ServerResponse, record: RequestRecord, status: number, body: unknown): void {
    record.status = status;
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  private sendStatus(res: ServerResponse, record: RequestRecord, code: number, reason: string, message: string): void {
    this.sendJson(res, record, code, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code });
  }

  private dispatch(method: string, route: Route, query: Record<string, string>, record: RequestRecord, res: ServerResponse): void {
    const { resource, namespace, name, subresource } = route;
    if (name === undefined) {
      if (method === 'GET' && record.watch) return this.watch(route, query, record, res);
      if (method === 'GET') return this.sendJson(res, record, 200, this.listBody(route, query));
      if (method === 'POST') {
        if (namespace === undefined) throw new HttpError(405, 'MethodNotAllowed', 'create needs a namespaced path');
        return this.sendJson(res, record, 201, this.create(resource, namespace, record.body));
      }
      throw new HttpError(405, 'MethodNotAllowed', `${method} is not allowed on a collection`);
    }
    if (namespace === undefined) throw new HttpError(404, 'NotFound', 'namespaced resources need a namespace');
    const existing = this.objects.get(resource.plural)?.get(keyOf(namespace, name));
    const notFound = (): HttpError => new HttpError(404, 'NotFound', `${resource.plural}.${resource.group || 'core'} "${name}" not found`);
    switch (method) {
      case 'GET':
        if (!existing) throw notFound();
        return this.sendJson(res, record, 200, existing);
      case 'DELETE': {
        if (!existing) throw notFound();
        const preconditionUid = (record.body as { preconditions?: { uid?: string } } | undefined)?.preconditions?.uid;
        if (preconditionUid && preconditionUid !== existing.metadata.uid) {
          throw new HttpError(409, 'Conflict', `Precondition failed: UID in precondition: ${preconditionUid}, UID in object meta: ${existing.metadata.uid}`);
        }
        return this.sendJson(res, record, 200, this.deleteStored(resource, existing));
      }
      case 'PUT':
      case 'PATCH': {
        if (!existing) throw notFound();
        let next: KubeObject;
        if (method === 'PUT') next = record.body as KubeObject;
        else {
          const type = (record.contentType ?? '').split(';')[0]?.trim();
          // Strategic merge differs from JSON merge only for lists with patch keys; the fields the
          // provider patches have none, so merge semantics are exact enough here.
          if (type === 'application/merge-patch+json' || type === 'application/strategic-merge-patch+json') next = mergePatch(existing, record.body) as KubeObject;
          else if (type === 'application/json-patch+json') next = jsonPatch(existing, record.body) as KubeObject;
          else throw new HttpError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json`);
        }
        this.checkBody(resource, namespace, name, next);
        const precondition = next.metadata.resourceVersion;
        if (precondition !== undefined && precondition !== existing.metadata.resourceVersion) {
          throw new HttpError(409, 'Conflict', `Operation cannot be fulfilled on ${resource.plural} "${name}": the object has been modified; please apply your changes to the latest version and try again`);
        }
        const stored = this.store(resource, clone(next), subresource === 'status' ? { keepStatus: false, onlyStatus: true } : { keepStatus: true });
        return this.sendJson(res, record, 200, stored);
      }
      default:
        throw new HttpError(405, 'MethodNotAllowed', `${method} is not allowed`);
    }
  }

  private checkBody(resource: FakeResource, namespace: string, name: string | undefined, body: unknown): asserts body is KubeObject {
    if (!isPlainObject(body) || !isPlainObject(body.metadata)) throw new HttpError(400, 'BadRequest', 'the body must be an object with metadata');
    const object = body as KubeObject;
    if (object.kind !== undefined && object.kind !== resource.kind) throw new HttpError(400, 'BadRequest', `kind ${String(object.kind)} does not match ${resource.kind}`);
    if (object.apiVersion !== undefined && object.apiVersion !== apiVersionOf(resource)) throw new HttpError(400, 'BadRequest', `apiVersion ${String(object.apiVersion)} does not match ${apiVersionOf(resource)}`);
    if (object.metadata.namespace !== undefined && object.metadata.namespace !== namespace) {
      throw new HttpError(400, 'BadRequest', 'the namespace of the provided object does not match the namespace sent on the request');
    }
    if (name !== undefined && object.metadata.name !== undefined && object.metadata.name !== name) {
      throw new HttpError(400, 'BadRequest', 'the name of the object does not match the name on the URL');
    }
  }

  private create(resource: FakeResource, namespace: string, body: unknown): KubeObject {
    this.checkBody(resource, namespace, undefined, body);
    const object = clone(body);
    if (!object.metadata.name && typeof object.metadata.generateName === 'string') object.metadata.name = `${object.metadata.generateName}${randomUUID().slice(0, 5)}`;
    if (!object.metadata.name) throw new HttpError(422, 'Invalid', 'metadata.name: Required value');
    if (this.objects.get(resource.plural)?.has(keyOf(namespace, object.metadata.name))) {
      throw new HttpError(409, 'AlreadyExists', `${resource.plural}.${resource.group || 'core'} "${object.metadata.name}" already exists`);
    }
    object.apiVersion = apiVersionOf(resource);
    object.kind = resource.kind;
    object.metadata.namespace = namespace;
    delete object.metadata.resourceVersion;
    delete object.metadata.uid;
    delete object.metadata.creationTimestamp;
    return this.store(resource, object, { keepStatus: true });
  }

  private checkVersion(value: string | undefined): number | undefined {
    if (value === undefined || value === '') return undefined;
    if (!/^\d+$/.test(value)) throw new HttpError(400, 'BadRequest', `invalid resource version "${value}"`);
    return Number(value);
  }

  private matching(route: Route, selector: LabelRequirement[]): KubeObject[] {
    return [...(this.objects.get(route.resource.plural)?.values() ?? [])]
      .filter((o) => route.namespace === undefined || o.metadata.namespace === route.namespace)
      .filter((o) => matchesSelector(o, selector))
      .sort((a, b) => keyOf(a.metadata.namespace, a.metadata.name).localeCompare(keyOf(b.metadata.namespace, b.metadata.name)));
  }

  private listBody(route: Route, query: Record<string, string>): unknown {
    const version = this.checkVersion(query.resourceVersion);
    if (version !== undefined && version !== 0 && query.resourceVersionMatch === 'Exact' && version < this.compactedAt) {
      throw new HttpError(410, 'Expired', `too old resource version: ${version} (${this.compactedAt})`);
    }
    return {
      kind: `${route.resource.kind}List`,
      apiVersion: apiVersionOf(route.resource),
      metadata: { resourceVersion: String(this.resourceVersion) },
      items: this.matching(route, parseLabelSelector(query.labelSelector)),
    };
  }

  private watch(route: Route, query: Record<string, string>, record: RequestRecord, res: ServerResponse): void {
    const selector = parseLabelSelector(query.labelSelector);
    const version = this.checkVersion(query.resourceVersion);
    record.status = 200;
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    const watcher: Watcher = { plural: route.resource.plural, namespace: route.namespace, selector, res, bookmarks: query.allowWatchBookmarks === 'true' };
    if (version !== undefined && version !== 0 && version < this.compactedAt) {
      this.writeEvent(watcher, {
        type: 'ERROR',
        object: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: `too old resource version: ${version} (${this.compactedAt})`, reason: 'Expired', code: 410 },
      });
      res.end();
      return;
    }
    if (version === undefined || version === 0) {
      for (const object of this.matching(route, selector)) this.writeEvent(watcher, { type: 'ADDED', object });
    } else {
      for (const event of this.history) if (event.rv > version) this.deliver(watcher, event);
    }
    this.watchers.add(watcher);
    res.on('close', () => this.closeWatcher(watcher));
    const timeoutSeconds = Number(query.timeoutSeconds ?? 0);
    if (timeoutSeconds > 0) {
      watcher.timeout = setTimeout(() => {
        this.closeWatcher(watcher);
        res.end();
      }, timeoutSeconds * 1000).unref();
    }
    if (watcher.bookmarks) {
      const tick = (): void => {
        this.sendBookmark(watcher);
        watcher.bookmarkTimer = setTimeout(tick, this.bookmarkIntervalMs).unref();
      };
      watcher.bookmarkTimer = setTimeout(tick, this.bookmarkIntervalMs).unref();
    }
  }
}

const TOKEN_REVIEW_PATH = '/apis/authentication.k8s.io/v1/tokenreviews';

// ---- object builders for tests ----------------------------------------------------------------

export interface ServicePortSpec {
  name?: string;
  port: number;
  targetPort?: number | string;
  protocol?: string;
  appProtocol?: string;
}

export function serviceObject(namespace: string, name: string, ports: ServicePortSpec[], extra: Record<string, unknown> = {}): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace },
    spec: { type: 'ClusterIP', ports: ports.map((p) => ({ protocol: 'TCP', ...p })), selector: { app: name }, ...extra },
  };
}

export interface EndpointSpec {
  address: string;
  ready?: boolean;
  serving?: boolean;
  terminating?: boolean;
}

/** An EndpointSlice as the EndpointSlice controller writes it (labelled with its Service's name). */
export function endpointSliceObject(namespace: string, service: string, slice: string, endpoints: EndpointSpec[], ports: Array<{ name?: string; port: number }>): KubeObject {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: slice, namespace, labels: { 'kubernetes.io/service-name': service, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' } },
    addressType: 'IPv4',
    endpoints: endpoints.map((e) => ({
      addresses: [e.address],
      conditions: { ready: e.ready ?? true, serving: e.serving ?? e.ready ?? true, terminating: e.terminating ?? false },
    })),
    ports: ports.map((p) => ({ name: p.name ?? '', port: p.port, protocol: 'TCP' })),
  };
}

export function serviceExportObject(namespace: string, name: string, annotations?: Record<string, string>): KubeObject {
  return {
    apiVersion: 'multicluster.x-k8s.io/v1alpha1',
    kind: 'ServiceExport',
    metadata: { name, namespace, ...(annotations ? { annotations } : {}) },
  };
}

/** The `status.conditions` of a ServiceExport, by type. */
export function conditionsOf(object: KubeObject | undefined): Record<string, { status: string; reason: string; message: string; lastTransitionTime: string }> {
  const conditions = ((object?.status as { conditions?: unknown[] } | undefined)?.conditions ?? []) as Array<{ type: string; status: string; reason: string; message: string; lastTransitionTime: string }>;
  return Object.fromEntries(conditions.map((c) => [c.type, c]));
}
