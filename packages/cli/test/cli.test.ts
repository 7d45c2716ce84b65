// The `othink` binary as a user runs it (through tsx, so no build is needed): exit codes, error
// messages, and a real Ctrl-C sent to a training process.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deviceUnavailableReason } from '@othink/core';
import { describe, expect, it } from 'vitest';

const cliDir = fileURLToPath(new URL('..', import.meta.url));
const main = join(cliDir, 'src', 'main.ts');

function othink(args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', main, ...args], {
    cwd: cliDir,
    encoding: 'utf8',
    env: { ...process.env, FORCE_COLOR: '0' },
    timeout: 120_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('othink (the binary)', () => {
  it('lists presets', () => {
    const r = othink(['presets']);
    expect(r.code).toBe(0);
    for (const p of [
      'default',
      'counting-sft',
      'counting-grpo',
      'counting-grpo-d',
      'geometry-sft',
      'geometry-grpo',
      'geometry-grpo-d',
    ]) {
      expect(r.stdout).toMatch(new RegExp(`^${p} `, 'm'));
    }
  });

  it('config errors exit with 2 and say what to change', () => {
    const r = othink(['train', '--dry-run', '--set', 'grpo.per_device_train_batch_size=6']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('error: invalid config');
    expect(r.stderr).toContain('perDeviceTrainBatchSize 6 must divide the 128 completions of a step'); // default: 16 prompts x G 8
    expect(r.stderr).toContain('→ at grpo.perDeviceTrainBatchSize');
    const p = othink(['train', '--preset', 'counting-grp']);
    expect(p.code).toBe(2);
    expect(p.stderr).toContain('unknown preset "counting-grp" (did you mean "counting-grpo"?)');
  });

  it('bad arguments are refused by name', () => {
    const r = othink(['train', '--max-steps', 'ten']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      "option '--max-steps <n>' argument 'ten' is invalid. --max-steps must be an integer >= 1",
    );
    const e = othink(['eval', 'x', '--task', 'reading']);
    expect(e.stderr).toContain('unknown task "reading"; tasks: counting, geometry');
    const m = othink(['eval', join(tmpdir(), 'no-such-model')]);
    expect(m.code).toBe(2);
    expect(m.stderr).toMatch(/no-such-model: not a model folder \(no config\.json\)/);
    const p = othink(['plot', tmpdir()]);
    expect(p.code).toBe(1);
    expect(p.stderr).toMatch(/no metrics\.jsonl \(is it a run folder\?\)/);
  });

  it.skipIf(deviceUnavailableReason('cuda') === null)(
    'model.device=cuda without a CUDA build or GPU stops in one line before any work',
    () => {
      const dir = mkdtempSync(join(tmpdir(), 'othink-nocuda-'));
      const runDir = join(dir, 'run');
      const r = othink(['train', '--set', 'model.device=cuda', '-o', runDir]);
      expect(r.code).toBe(2);
      const lines = r.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(
        /^error: model\.device=cuda: (this build of @othink\/native has no CUDA support|no usable CUDA device)/,
      );
      expect(existsSync(runDir)).toBe(false); // nothing was started
      const g = othink(['generate', 'tiny', '--device', 'cuda', '--prompt', 'x']);
      expect(g.code).toBe(2);
      expect(g.stderr.trim()).toMatch(/^error: --device=cuda: [^\n]+$/);
    },
  );

  it('--dry-run prints the resolved default config', () => {
    const r = othink(['train', '--dry-run', '--seed', '5', '--max-steps', '3']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^# Resolved config/);
    expect(r.stdout).toMatch(/^seed: 5$/m);
    expect(r.stdout).toMatch(/^sft:\n {2}maxSteps: 3$/m);
    expect(r.stdout).toMatch(/^grpo:\n {2}maxSteps: 3$/m);
  });

  it('generate runs the tiny model', () => {
    const r = othink(['generate', 'tiny', '--prompt', 'How many?', '--max-new-tokens', '4']);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('model: tiny Qwen2-VL (random weights)');
    expect(r.stdout.length).toBeGreaterThan(0);
  });

  it('Ctrl-C saves a checkpoint and exits with 130; a second Ctrl-C is not needed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'othink-sigint-'));
    const config = join(dir, 'c.yaml');
    writeFileSync(
      config,
      [
        'model:',
        '  tiny: { hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 1, numAttentionHeads: 2, numKeyValueHeads: 1, visionDepth: 1, visionEmbedDim: 32, visionNumHeads: 2 }',
        '  maxPixels: 3136',
        'data: { trainSize: 8, synthetic: { width: 112, height: 84 }, sftPrompt: r1v-train }',
        'sft: { maxSteps: 10000, perDeviceTrainBatchSize: 2, gradientAccumulationSteps: 1 }',
        'eval: { beforeTraining: false, afterEachPhase: false }',
        'output: { saveSteps: 0, loggingSteps: 1, progress: plain }',
      ].join('\n'),
    );
    const runDir = join(dir, 'run');
    const child: ChildProcess = spawn(
      process.execPath,
      ['--import', 'tsx', main, 'train', config, '-o', runDir],
      {
        cwd: cliDir,
        env: { ...process.env, FORCE_COLOR: '0' },
      },
    );
    let stderr = '';
    let stdout = '';
    let sent = false;
    child.stdout?.on('data', (d) => {
      stdout += String(d);
    });
    child.stderr?.on('data', (d) => {
      stderr += String(d);
      if (!sent && /\[sft\] step 3\//.test(stderr)) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    expect(sent).toBe(true);
    expect(code).toBe(130);
    expect(stderr).toContain(
      'Ctrl-C: stopping after this step (GRPO: after the last update of this rollout) and saving a checkpoint',
    );
    expect(stderr).toMatch(/sft: stopped at step \d+ of 10000; the last good checkpoint is .*checkpoint-\d+/);
    expect(stdout).toContain(`Resume with: othink train --resume ${runDir}`);
    const checkpoints = readdirSync(join(runDir, 'sft')).filter((n) => n.startsWith('checkpoint-'));
    expect(checkpoints).toHaveLength(1);
    expect(existsSync(join(runDir, 'sft', checkpoints[0], 'trainer_state.json'))).toBe(true);
  });
});
