// Who this process is in a multi-process job, read from the environment the way each launcher
// writes it: torchrun / `othink train --nproc-per-node` (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
// MASTER_PORT), Open MPI's mpirun (OMPI_COMM_WORLD_*) and SLURM's srun (SLURM_PROCID, ...). No
// launcher: one process, rank 0 of 1. Every problem names the variable.

export type Environment = Record<string, string | undefined>;

export interface DistributedEnv {
  rank: number;
  worldSize: number;
  /** Rank on this machine (which GPU is ours). */
  localRank: number;
  /** Processes on this machine, when the launcher says. */
  localWorldSize?: number;
  /** Where rank 0 serves the rendezvous store. */
  masterAddr: string;
  masterPort: number;
  /** Which launcher's variables were read. */
  source: 'single' | 'torchrun' | 'openmpi' | 'slurm';
}

/** torch's default MASTER_PORT, used when a launcher (srun, mpirun) sets none. */
export const DEFAULT_MASTER_PORT = 29500;

function present(env: Environment, name: string): boolean {
  return env[name] !== undefined && env[name] !== '';
}

function integer(env: Environment, name: string, min: number): number {
  const raw = env[name] ?? '';
  if (!/^\s*\d+\s*$/.test(raw)) throw new RangeError(`${name} must be an integer >= ${min} (got '${raw}')`);
  const n = Number(raw);
  if (n < min) throw new RangeError(`${name} must be an integer >= ${min} (got ${n})`);
  return n;
}

function optionalInteger(env: Environment, name: string, min: number): number | undefined {
  return present(env, name) ? integer(env, name, min) : undefined;
}

/**
 * The first host of a SLURM node list, when it is simple: `node01`, `gpu[03-06,9]` (-> gpu03),
 * `a,b`. Null for what this does not parse (then MASTER_ADDR has to be given).
 */
export function firstSlurmHost(list: string): string | null {
  const m = /^([^,[\]]+)(?:\[(\d+)[^\]]*\])?(?:,|$)/.exec(list.trim());
  if (!m) return null;
  return m[2] === undefined ? m[1] : m[1] + m[2];
}

function masterPort(env: Environment, worldSize: number): number {
  // One process may take any free port (0): nobody else needs to find its store.
  if (!present(env, 'MASTER_PORT')) return worldSize > 1 ? DEFAULT_MASTER_PORT : 0;
  const port = integer(env, 'MASTER_PORT', worldSize > 1 ? 1 : 0);
  if (port > 65535) throw new RangeError(`MASTER_PORT must be a port number in 1..65535 (got ${port})`);
  return port;
}

/**
 * Reads the job's layout from `env` (default: process.env). Precedence: RANK / WORLD_SIZE, then
 * OMPI_COMM_WORLD_*, then SLURM_PROCID / SLURM_NTASKS; none: a single process.
 */
export function resolveDistributedEnv(env: Environment = process.env): DistributedEnv {
  let source: DistributedEnv['source'];
  let rank: number;
  let worldSize: number;
  let localRank: number;
  let localWorldSize: number | undefined;
  let rankName: string;
  let worldName: string;
  // The master when the variables leave it unsaid: loopback when every rank is on this machine.
  let fallbackAddr: string | undefined;

  if (present(env, 'RANK') || present(env, 'WORLD_SIZE')) {
    source = 'torchrun';
    if (!present(env, 'WORLD_SIZE'))
      throw new RangeError('RANK is set but WORLD_SIZE is not (set both, or neither)');
    if (!present(env, 'RANK'))
      throw new RangeError('WORLD_SIZE is set but RANK is not (set both, or neither)');
    [rankName, worldName] = ['RANK', 'WORLD_SIZE'];
    worldSize = integer(env, 'WORLD_SIZE', 1);
    rank = integer(env, 'RANK', 0);
    localWorldSize = optionalInteger(env, 'LOCAL_WORLD_SIZE', 1);
    // Without LOCAL_RANK (a hand-started job) assume one machine: the local rank is the rank.
    localRank = optionalInteger(env, 'LOCAL_RANK', 0) ?? rank;
    if (localWorldSize === worldSize) fallbackAddr = '127.0.0.1';
  } else if (present(env, 'OMPI_COMM_WORLD_SIZE')) {
    source = 'openmpi';
    [rankName, worldName] = ['OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_SIZE'];
    worldSize = integer(env, worldName, 1);
    rank = integer(env, rankName, 0);
    localRank = optionalInteger(env, 'OMPI_COMM_WORLD_LOCAL_RANK', 0) ?? rank;
    localWorldSize = optionalInteger(env, 'OMPI_COMM_WORLD_LOCAL_SIZE', 1);
    if (localWorldSize === worldSize) fallbackAddr = '127.0.0.1';
  } else if (present(env, 'SLURM_NTASKS') && present(env, 'SLURM_PROCID')) {
    source = 'slurm';
    [rankName, worldName] = ['SLURM_PROCID', 'SLURM_NTASKS'];
    worldSize = integer(env, worldName, 1);
    rank = integer(env, rankName, 0);
    localRank = optionalInteger(env, 'SLURM_LOCALID', 0) ?? 0;
    // Rank 0 runs on the first node of the step (srun's block distribution).
    const nodes = env.SLURM_STEP_NODELIST || env.SLURM_JOB_NODELIST || env.SLURM_NODELIST;
    fallbackAddr = (nodes ? firstSlurmHost(nodes) : null) ?? env.SLURM_LAUNCH_NODE_IPADDR ?? undefined;
  } else {
    return {
      rank: 0,
      worldSize: 1,
      localRank: 0,
      localWorldSize: 1,
      masterAddr: '127.0.0.1',
      masterPort: 0,
      source: 'single',
    };
  }

  if (rank >= worldSize) {
    throw new RangeError(
      `${rankName} ${rank} is out of range for ${worldName} ${worldSize} (ranks are 0..${worldSize - 1})`,
    );
  }
  const port = masterPort(env, worldSize);
  const addr = env.MASTER_ADDR || fallbackAddr || (worldSize === 1 ? '127.0.0.1' : undefined);
  if (addr === undefined) {
    throw new RangeError(
      `MASTER_ADDR is not set: the address of rank 0's machine, where it serves the rendezvous store on MASTER_PORT (${worldName}=${worldSize})`,
    );
  }
  return { rank, worldSize, localRank, localWorldSize, masterAddr: addr, masterPort: port, source };
}
