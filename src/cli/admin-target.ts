import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { loadFederationFile } from '../config/load.js';
import { grpc } from '../proto/grpc-transport.js';
import { checkCredentials, diagnoseController, notTheAdminApi } from './connection-diagnosis.js';
import { ControllerCallError, connectAdmin, expectedControllerId, readAdminCredentials, type AdminApi, type AdminConnection } from './controller-api.js';
import { UsageError } from './cli-error.js';

export interface AdminTargetOptions {
  controller?: string;
  credentials?: string;
  federationConfig?: string;
}

/** Adds --controller, --credentials and --federation-config to a command that talks to the controller. */
export function withAdminTarget(command: Command): Command {
  return command
    .option('--controller <address>', 'controller API address (default: from federation.yaml, or $FEDGATE_CONTROLLER)')
    .option('--credentials <dir>', 'admin credentials: tls.crt, tls.key, ca.crt (default: <controller pkiDir>/admin, or $FEDGATE_CREDENTIALS)')
    .option('--federation-config <dir>', 'federation-config directory used for the defaults', 'federation-config');
}

/**
 * Finds the controller and the operator credentials: flags first, then environment, then the
 * federation-config of the current checkout.
 */
export function openAdmin(options: AdminTargetOptions): AdminConnection {
  let address = options.controller ?? process.env.FEDGATE_CONTROLLER;
  let credentials = options.credentials ?? process.env.FEDGATE_CREDENTIALS;
  if (!address || !credentials) {
    const file = join(resolve(options.federationConfig ?? 'federation-config'), 'federation.yaml');
    if (!existsSync(file)) throw new UsageError(`give --controller and --credentials (no ${file} to take defaults from)`);
    const federation = loadFederationFile(file);
    const listen = federation.spec.controller.advertise ?? federation.spec.controller.listen;
    address ??= listen.replace(/^0\.0\.0\.0:/, '127.0.0.1:');
    credentials ??= join(federation.controllerPkiDir, 'admin');
  }
  const files = readAdminCredentials(credentials);
  const probeCredentials = { ...files, dir: credentials };
  const local = checkCredentials(probeCredentials);
  if (local) throw local;
  const connection = connectAdmin(address, files);
  const target = address;
  const expected = expectedControllerId(files);
  // Transport failures say what is really at the address (see connection-diagnosis.ts); answers
  // from the controller itself pass through unchanged.
  const explain = async (error: unknown): Promise<unknown> => {
    if (!(error instanceof ControllerCallError)) return error;
    if (error.grpcCode === grpc.status.UNIMPLEMENTED) return notTheAdminApi(target);
    if (error.grpcCode !== grpc.status.UNAVAILABLE && error.grpcCode !== grpc.status.DEADLINE_EXCEEDED) return error;
    return (await diagnoseController(target, probeCredentials, expected)) ?? error;
  };
  const call = Object.fromEntries(
    Object.entries(connection.call).map(([name, method]) => [
      name,
      async (request: unknown) => {
        try {
          return await (method as (request: unknown) => Promise<unknown>)(request);
        } catch (error) {
          throw await explain(error);
        }
      },
    ]),
  ) as unknown as AdminApi;
  return { call, close: () => connection.close() };
}

export async function withAdmin<T>(options: AdminTargetOptions, run: (admin: AdminConnection) => Promise<T>): Promise<T> {
  const admin = openAdmin(options);
  try {
    return await run(admin);
  } finally {
    admin.close();
  }
}
