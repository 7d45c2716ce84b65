/**
 * `pnpm bench`: times every kernel at realistic sizes and writes bench-results/kernels.{json,md}.
 *
 *   pnpm bench                       the issue's sizes, capped to this machine's memory and time budget
 *   pnpm bench -- --quick            small sizes, a few seconds (smoke test)
 *   pnpm bench -- --only logprobs    one or more sections (comma-separated): logprobs, fused, rl, gemm, attention, model, data-text, data-image
 *   pnpm bench -- --out <dir>        output directory (default: bench-results/ at the repository root)
 *   pnpm bench -- --fused-budget <s> seconds one fused-linear configuration may take (default 240)
 *   pnpm bench -- --threads <n>      threads of the kernels and of memcpy (default: all cores / OMP_NUM_THREADS)
 *
 * Progress goes to stderr; the markdown tables go to stdout and to kernels.md.
 */
import { execSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { binaryPath, buildInfo, setNumThreads } from '@othink/native';
import { EXTERNAL_SECTIONS, runExternal } from './external.js';
import { benchFusedLinear, benchLogprobs, benchRl, type KernelBenchOptions } from './kernels.js';
import { markdownSection, type SectionResult } from './report.js';
import { GB, load, memAvailable, now } from './timing.js';

const SECTIONS = ['logprobs', 'fused', 'rl', ...EXTERNAL_SECTIONS.map((e) => e.id)];
const repoRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));

function usage(): string {
  return [
    'usage: pnpm bench [-- options]',
    '  --quick              small sizes (a few seconds)',
    `  --only <a,b>         sections: ${SECTIONS.join(', ')}`,
    '  --out <dir>          output directory (default: <repo>/bench-results)',
    '  --fused-budget <s>   seconds one fused-linear configuration may take (default 240)',
    '  --memory-fraction <f> fraction of available memory one configuration may use (default 0.6)',
    '  --threads <n>        threads of the kernels and of memcpy (default: all cores, or OMP_NUM_THREADS)',
  ].join('\n');
}

function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(execSync('cat /proc/cpuinfo', { encoding: 'utf8' }));
    if (m) return m[1].trim();
  } catch {}
  return cpus()[0]?.model ?? 'unknown';
}

function cpuFlags(): string[] {
  try {
    const m = /^flags\s*:\s*(.+)$/m.exec(execSync('cat /proc/cpuinfo', { encoding: 'utf8' }));
    return m ? m[1].split(' ').filter((f) => /^(avx|fma|f16c)/.test(f)) : [];
  } catch {
    return [];
  }
}

function git(args: string): string | null {
  try {
    return execSync(`git ${args}`, {
      cwd: repoRoot,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return null;
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2).filter((a) => a !== '--'),
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      out: { type: 'string' },
      'fused-budget': { type: 'string', default: '240' },
      'memory-fraction': { type: 'string', default: '0.6' },
      threads: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${usage()}\n`);
    return;
  }
  const only = values.only ? values.only.split(',').map((s) => s.trim()) : SECTIONS;
  const unknown = only.filter((s) => !SECTIONS.includes(s));
  if (unknown.length) throw new Error(`unknown section(s) ${unknown.join(', ')}\n${usage()}`);
  const outDir = resolve(values.out ?? join(repoRoot, 'bench-results'));
  const quick = values.quick;
  const t0 = now();
  const log = (msg: string) =>
    process.stderr.write(`[bench ${(now() - t0).toFixed(0).padStart(4)} s] ${msg}\n`);

  if (values.threads) {
    const threads = Number(values.threads);
    // Children (every kernel measurement) read OMP_NUM_THREADS; in-process sections use setNumThreads.
    process.env.OMP_NUM_THREADS = String(threads);
    setNumThreads(threads);
  }
  const info = buildInfo();
  const machine = {
    cpu: cpuModel(),
    cpuFlags: cpuFlags(),
    cores: availableParallelism(),
    memoryGiB: totalmem() / GB,
    memAvailableGiBAtStart: (memAvailable() ?? Number.NaN) / GB,
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    addon: info,
    addonBinary: binaryPath,
    ompNumThreads: process.env.OMP_NUM_THREADS ?? null,
    ompWaitPolicy: process.env.OMP_WAIT_POLICY ?? null,
    loadAverageAtStart: load(),
    loadAverageAtEnd: [0, 0, 0] as [number, number, number],
    gitCommit: git('rev-parse --short HEAD'),
    gitDirty: (git('status --porcelain --untracked-files=no') ?? '') !== '',
    date: new Date().toISOString(),
  };
  log(
    `${machine.cpu}, ${machine.cores} cores, node ${machine.node}, addon ${JSON.stringify(info)}, ` +
      `load ${machine.loadAverageAtStart.map((x) => x.toFixed(2)).join(' ')}${quick ? ', --quick' : ''}`,
  );

  const opts: KernelBenchOptions = {
    quick,
    fusedBudgetS: Number(values['fused-budget']),
    memoryFraction: Number(values['memory-fraction']),
    log,
  };
  const sections: SectionResult[] = [];
  for (const id of only) {
    const s0 = now();
    log(`section ${id}`);
    let s: SectionResult;
    try {
      if (id === 'logprobs') s = await benchLogprobs(opts, info.threads);
      else if (id === 'fused') s = await benchFusedLinear(opts);
      else if (id === 'rl') s = await benchRl(opts);
      else s = await runExternal(EXTERNAL_SECTIONS.find((e) => e.id === id)!, { quick });
    } catch (err) {
      s = {
        id,
        title: id,
        tables: [],
        notes: [`Failed: ${err instanceof Error ? err.message : String(err)}`],
      };
    }
    s.seconds = now() - s0;
    sections.push(s);
    process.stdout.write(`${markdownSection(s)}\n`);
  }
  machine.loadAverageAtEnd = load();

  const loadStr = (l: number[]) => l.map((x) => x.toFixed(2)).join(' / ');
  const header = [
    `# OThink kernel benchmarks${quick ? ' (--quick)' : ''}`,
    '',
    `- Machine: ${machine.cpu}, ${machine.cores} cores (${machine.cpuFlags.join(' ')}), ${machine.memoryGiB.toFixed(1)} GiB ` +
      `(${machine.memAvailableGiBAtStart.toFixed(1)} GiB available at start)`,
    `- Node ${machine.node}, addon ${JSON.stringify(info)}${machine.ompNumThreads ? `, OMP_NUM_THREADS=${machine.ompNumThreads}` : ''}` +
      `${machine.ompWaitPolicy ? `, OMP_WAIT_POLICY=${machine.ompWaitPolicy}` : ''}` +
      (process.env.OTHINK_NATIVE_BINARY ? ` (binary ${binaryPath})` : ''),
    `- Load average (1/5/15 min): ${loadStr(machine.loadAverageAtStart)} at start, ${loadStr(machine.loadAverageAtEnd)} at end`,
    `- Commit ${machine.gitCommit ?? '?'}${machine.gitDirty ? ' (with uncommitted changes)' : ''}, ${machine.date}, ` +
      `${((now() - t0) / 60).toFixed(1)} min`,
    '- Times are medians of the timed runs (warm-ups excluded); every comparison is measured in the same run.',
    info.cuda
      ? '- CUDA build: the sections above time the CPU kernels only.'
      : '- No CUDA build (or no GPU): CPU numbers only.',
    '',
  ].join('\n');
  const targets = sections.flatMap((s) => s.targets ?? []);
  const summary = targets.length
    ? ['## Targets', '', ...targets.map((t) => `- **${t.status.toUpperCase()}**: ${t.name}.`), ''].join('\n')
    : '';
  const md = [header, summary, ...sections.map(markdownSection)].join('\n');
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'kernels.md'), md);
  writeFileSync(
    join(outDir, 'kernels.json'),
    `${JSON.stringify({ machine, options: { quick, only, fusedBudgetS: opts.fusedBudgetS, memoryFraction: opts.memoryFraction }, sections }, null, 2)}\n`,
  );
  if (summary) process.stdout.write(`${summary}\n`);
  log(`wrote ${join(outDir, 'kernels.md')} and kernels.json`);
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
