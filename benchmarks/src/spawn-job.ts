// Runs one benchmark job in a fresh `node` (this process's tsx loader and `--expose-gc`): the job
// goes in as a JSON argument, the result comes back as one stdout line `<prefix><json>`.
import { spawn } from 'node:child_process';

/** `name` labels errors, e.g. `model worker`. Output other than the result line is kept for them. */
export function spawnJob<T>(script: string, job: unknown, prefix: string, name: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const args = [...process.execArgv, '--expose-gc', script, JSON.stringify(job)];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      out += d;
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const line = out.split('\n').find((l) => l.startsWith(prefix));
      if (code === 0 && line) resolve(JSON.parse(line.slice(prefix.length)) as T);
      else
        reject(
          new Error(
            `${name} ended with ${signal ? `signal ${signal}` : `code ${code}`}` +
              (signal === 'SIGKILL' ? ' (killed: out of memory?)' : '') +
              (out ? `: ${out.slice(-2000)}` : ''),
          ),
        );
    });
  });
}
