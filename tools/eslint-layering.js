/**
 * The layering of STYLE.md as one lint rule: which of our folders may import which, and which
 * folder is the only home of each third-party library. A change to the architecture is a change
 * to these two tables.
 */
import { dirname, relative, resolve } from 'node:path';

/** Folder under src/ → folders under src/ it may import (itself is always allowed). */
export const ALLOWED_IMPORTS = {
  core: [],
  config: ['core', 'model'],
  model: ['core'],
  proto: ['core', 'model'],
  store: ['core', 'model', 'config'],
  pki: ['core', 'model', 'config'],
  policy: ['core', 'model', 'config'],
  discovery: ['core', 'model', 'config'],
  balancer: ['core', 'model', 'config'],
  admin: ['core', 'model', 'config'],
  http2: [],
  gateway: ['http2', 'core', 'model', 'config', 'proto', 'pki', 'policy', 'discovery', 'balancer', 'admin'],
  controller: ['core', 'model', 'config', 'proto', 'pki', 'policy', 'store', 'admin'],
  drill: ['core', 'model', 'config', 'proto', 'pki', 'admin'],
  demo: ['core', 'model', 'config', 'proto', 'pki', 'admin', 'drill'],
  cli: ['core', 'model', 'config', 'proto', 'pki', 'policy', 'admin', 'drill', 'demo', 'gateway', 'controller', 'discovery', 'store'],
  bin: ['cli', 'core'],
};

/** Third-party library → the only folder (prefix under src/) allowed to import it. */
export const LIBRARY_HOMES = {
  'node-forge': 'pki/forge',
  ioredis: 'store/redis',
  '@kubernetes/client-node': 'discovery/kubernetes',
  '@grpc/grpc-js': 'proto',
  '@bufbuild/protobuf': 'proto',
  pino: 'core',
  'prom-client': 'admin',
  yaml: 'config',
  commander: 'cli',
};

function libraryOf(source) {
  if (source.startsWith('.') || source.startsWith('node:')) return undefined;
  const parts = source.split('/');
  return source.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0];
}

export const layeringRule = {
  meta: { type: 'problem', schema: [], messages: { folder: '{{message}}' } },
  create(context) {
    const file = context.filename;
    const srcRoot = resolve(context.cwd, 'src');
    const rel = relative(srcRoot, file);
    if (rel.startsWith('..')) return {};
    const folder = rel.split('/')[0];
    const check = (node, source) => {
      if (typeof source !== 'string') return;
      const library = libraryOf(source);
      if (library !== undefined) {
        const home = LIBRARY_HOMES[library];
        if (home !== undefined && !(rel === home || rel.startsWith(`${home}/`))) {
          context.report({ node, messageId: 'folder', data: { message: `${library} may only be imported under src/${home}/ (STYLE.md: each library lives in one folder)` } });
        }
        return;
      }
      if (!source.startsWith('.')) return;
      const target = relative(srcRoot, resolve(dirname(file), source));
      if (target.startsWith('..')) return;
      const targetFolder = target.split('/')[0];
      if (targetFolder === folder) return;
      const allowed = ALLOWED_IMPORTS[folder];
      if (allowed && !allowed.includes(targetFolder)) {
        context.report({ node, messageId: 'folder', data: { message: `src/${folder} must not import src/${targetFolder} (allowed: ${allowed.join(', ') || 'nothing of ours'})` } });
      }
    };
    return {
      ImportDeclaration: (node) => check(node, node.source.value),
      ExportNamedDeclaration: (node) => node.source && check(node, node.source.value),
      ExportAllDeclaration: (node) => check(node, node.source.value),
      ImportExpression: (node) => node.source.type === 'Literal' && check(node, node.source.value),
    };
  },
};
