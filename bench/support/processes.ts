import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** What a process has used so far, from /proc: CPU seconds split by mode, and its threads' context switches. */
export interface ProcessCounters {
  userSeconds: number;
  systemSeconds: number;
  /** A thread went to sleep (waiting for I/O or a lock): each one is a later wake-up. */
  voluntarySwitches: number;
  /** A thread was preempted while it could still run. */
  involuntarySwitches: number;
}

const NO_COUNTERS: ProcessCounters = { userSeconds: 0, systemSeconds: 0, voluntarySwitches: 0, involuntarySwitches: 0 };

/** User and system CPU seconds, from /proc/PID/stat (fields 14 and 15, counted after the command name's ") "). */
function cpuTimes(pid: number): [number, number] {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return [Number(fields[11]) / 100, Number(fields[12]) / 100];
}

export function processCounters(pid: number | undefined): ProcessCounters {
  if (!pid) return NO_COUNTERS;
  try {
    const [userSeconds, systemSeconds] = cpuTimes(pid);
    // Summed over threads: HAProxy serves a connection on whichever of its threads took it, and
    // Node's helper threads wake up too.
    const statuses = readdirSync(`/proc/${pid}/task`).map((task) => {
      try {
        return readFileSync(`/proc/${pid}/task/${task}/status`, 'utf8');
      } catch {
        return ''; // the thread ended between the listing and the read
      }
    });
    const switches = (name: string): number => statuses.reduce((sum, status) => sum + Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? 0), 0);
    return { userSeconds, systemSeconds, voluntarySwitches: switches('voluntary_ctxt_switches'), involuntarySwitches: switches('nonvoluntary_ctxt_switches') };
  } catch {
    return NO_COUNTERS;
  }
}

/** CPU seconds (user + system) a process has used so far; 0 once it is gone. */
export function cpuSeconds(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const [user, system] = cpuTimes(pid);
    return user + system;
  } catch {
    return 0;
  }
}

export function run(command: string, args: string[], timeoutMs = 120_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child: ChildProcess = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    // A missing command is an 'error' event, not an exit: without this the benchmark would crash
    // and leave the gateways it started running.
    child.on('error', (error) => {
      clearTimeout(timer);
      resolve({ code: 127, stdout, stderr: `${stderr}${error.message}` });
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Fails with the Debian packages to install when a command the benchmark runs is missing. */
export function requireCommands(commands: Record<string, string>): void {
  const path = (process.env.PATH ?? '').split(':');
  const missing = Object.entries(commands).filter(([command]) => !path.some((dir) => dir !== '' && existsSync(join(dir, command))));
  if (missing.length > 0) {
    const packages = [...new Set(missing.map(([, pkg]) => pkg))];
    throw new Error(`missing ${missing.map(([c]) => c).join(', ')}: install them with "sudo apt-get install -y ${packages.join(' ')}"`);
  }
}
