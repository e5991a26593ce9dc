import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomicSync } from '../../core/atomic-file.js';
import { ErrorCodes, errorMessage, FedgateError } from '../../core/errors.js';

/** What a gateway keeps after joining: where the controller is and how to recognise it. */
export interface FederationMembership {
  cluster: string;
  federation: string;
  /** The API address the gateway joined through. */
  apiAddress: string;
  /**
   * Every controller replica the controller last announced (Sync settings), the one first that
   * sent it. Gateways fail over between them, so no load balancer is needed in front of replicas.
   */
  controllerAddresses?: string[];
  controllerSpiffeId: string;
  controllerCaPem: string;
  joinedAt: number;
}

export const MEMBERSHIP_FILE = 'membership.json';

export function membershipFile(stateDir: string): string {
  return join(stateDir, MEMBERSHIP_FILE);
}

/** A state file that exists but cannot be used: the one error, with the file and what to do. */
export class StateFileError extends FedgateError {
  constructor(
    readonly file: string,
    problem: string,
    remedy: string,
  ) {
    super(ErrorCodes.STATE_FILE_INVALID, `${file}: ${problem}; ${remedy}`);
  }
}

function rejoinRemedy(cluster: string | undefined): string {
  const name = cluster ?? '<cluster>';
  return `restore it from a backup, or join again keeping this cluster's CA: "fedgate token create --cluster ${name}" on the controller, then "fedgate join --rejoin --config <cluster file> --token <token>"`;
}

/**
 * Reads membership.json; undefined when the cluster has not joined. A file that is empty, torn or
 * not a membership is a StateFileError (never "not joined": that would send a member to join
 * again with a token it no longer has).
 */
export function readMembership(stateDir: string, cluster?: string): FederationMembership | undefined {
  const file = membershipFile(stateDir);
  if (!existsSync(file)) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new StateFileError(file, `not valid JSON (${errorMessage(error)})`, rejoinRemedy(cluster));
  }
  const problem = membershipProblem(value);
  if (problem) throw new StateFileError(file, problem, rejoinRemedy(cluster));
  return value as FederationMembership;
}

function membershipProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not a membership (expected an object)';
  const m = value as Record<string, unknown>;
  for (const field of ['cluster', 'federation', 'apiAddress', 'controllerSpiffeId', 'controllerCaPem'] as const) {
    if (typeof m[field] !== 'string' || m[field] === '') return `${field}: must be a non-empty string`;
  }
  if (typeof m.joinedAt !== 'number') return 'joinedAt: must be a number';
  if (m.controllerAddresses !== undefined && (!Array.isArray(m.controllerAddresses) || m.controllerAddresses.some((a) => typeof a !== 'string'))) {
    return 'controllerAddresses: must be a list of addresses';
  }
  return undefined;
}

export function writeMembership(stateDir: string, membership: FederationMembership): void {
  writeFileAtomicSync(membershipFile(stateDir), `${JSON.stringify(membership, null, 2)}\n`);
}

/** The addresses to dial, in order: the announced replicas, then the joined one if not among them. */
export function controllerAddressesOf(membership: FederationMembership): string[] {
  const announced = membership.controllerAddresses ?? [];
  return announced.includes(membership.apiAddress) ? [...announced] : [...announced, membership.apiAddress];
}

/** Re-reads membership.json when it changed on disk (a `fedgate join --rejoin` while running). */
export class MembershipFile {
  private cached: FederationMembership | undefined;
  private stamp = '';

  constructor(
    private readonly stateDir: string,
    private readonly cluster: string,
  ) {}

  current(): FederationMembership | undefined {
    const file = membershipFile(this.stateDir);
    let stamp = '';
    try {
      const stat = statSync(file);
      stamp = `${stat.mtimeMs}/${stat.size}/${stat.ino}`;
    } catch {
      stamp = 'missing';
    }
    if (stamp !== this.stamp || !this.cached) {
      this.cached = readMembership(this.stateDir, this.cluster);
      this.stamp = stamp;
    }
    return this.cached;
  }

  save(membership: FederationMembership): void {
    writeMembership(this.stateDir, membership);
    this.cached = membership;
    this.stamp = '';
  }
}
