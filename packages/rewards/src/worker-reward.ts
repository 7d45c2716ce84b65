// Opt-in isolation for untrusted synchronous reward code. In-process, a synchronous infinite loop blocks
// the event loop and no timer can stop it; in a worker thread it can be terminated.

import { isAbsolute } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { RewardContext } from './types.js';

export interface WorkerRewardOptions {
  /** The ES module exporting the reward function: a URL (`file:`) or an absolute path. */
  module: string | URL;
  /** The export holding the `RewardFunction`; default `default`. */
  exportName?: string;
  /** Per-call time limit in ms; past it the worker is terminated and the next call starts a fresh one. Default 10000. */
  timeoutMs?: number;
}

/** A reward function running in a worker thread; `close()` stops the worker. */
export interface WorkerReward {
  (completion: string, context: RewardContext): Promise<number>;
  close(): Promise<void>;
}

// CommonJS source of the worker (`eval: true` avoids resolving a file next to this module, which differs
// between src/ under vitest and dist/). It imports the user's module and answers one request at a time.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const loaded = import(workerData.url).then((module) => {
  const fn = module[workerData.exportName];
  if (typeof fn !== 'function') {
    throw new Error(workerData.url + " has no function export '" + workerData.exportName + "'");
  }
  return fn;
});
loaded.catch(() => {});
const describe = (error) => (error instanceof Error ? error.name + ': ' + error.message : String(error));
parentPort.on('message', async (request) => {
  let reply;
  try {
    const fn = await loaded;
    reply = { id: request.id, ok: true, value: await fn(request.completion, request.context) };
  } catch (error) {
    reply = { id: request.id, ok: false, error: describe(error) };
  }
  try {
    parentPort.postMessage(reply);
  } catch (error) {
    parentPort.postMessage({ id: request.id, ok: false, error: 'its result cannot be sent back: ' + describe(error) });
  }
});
`;

interface WorkerReply {
  id: number;
  ok: boolean;
  value?: unknown;
  error?: string;
}

function moduleUrl(module: string | URL): string {
  if (module instanceof URL) return module.href;
  if (isAbsolute(module)) return pathToFileURL(module).href;
  if (/^[a-z][a-z0-9+.-]*:/i.test(module)) return module;
  throw new Error(`createWorkerReward: module must be a URL or an absolute path, got '${module}'`);
}

/**
 * Runs a reward function exported by an ES module in a worker thread, one call at a time. A call that
 * exceeds `timeoutMs` (even a synchronous infinite loop) is abandoned, its worker terminated, and the call
 * rejects, which `combineRewards` turns into a failure value and a log line. The completion and context
 * are copied to the worker with the structured-clone algorithm, so the sample's fields must be cloneable.
 * The function's return value is passed through unchecked; `combineRewards` checks it.
 */
export function createWorkerReward(options: WorkerRewardOptions): WorkerReward {
  const workerData = { url: moduleUrl(options.module), exportName: options.exportName ?? 'default' };
  const timeoutMs = options.timeoutMs ?? 10_000;
  if (!(timeoutMs > 0) || !Number.isFinite(timeoutMs)) {
    throw new Error(`createWorkerReward: timeoutMs must be a finite number > 0, got ${timeoutMs}`);
  }
  let worker: Worker | undefined;
  let queue: Promise<unknown> = Promise.resolve();
  let nextId = 0;
  let closed = false;

  const callWorker = (completion: string, context: RewardContext): Promise<number> => {
    if (closed) return Promise.reject(new Error('createWorkerReward: the reward was closed'));
    if (worker === undefined) worker = new Worker(WORKER_SOURCE, { eval: true, workerData });
    const current = worker;
    const id = nextId++;
    return new Promise<number>((resolve, reject) => {
      const finish = (): void => {
        clearTimeout(timer);
        current.off('message', onMessage);
        current.off('error', onError);
        current.off('exit', onExit);
        // An idle worker must not keep the process alive.
        current.unref();
      };
      const discard = (): void => {
        if (worker === current) worker = undefined;
        void current.terminate();
      };
      const onMessage = (reply: WorkerReply): void => {
        if (reply.id !== id) return;
        finish();
        if (reply.ok) resolve(reply.value as number);
        else reject(new Error(reply.error));
      };
      const onError = (error: Error): void => {
        finish();
        discard();
        reject(error);
      };
      const onExit = (code: number): void => {
        finish();
        discard();
        reject(new Error(`the reward worker exited with code ${code}`));
      };
      const timer = setTimeout(() => {
        finish();
        discard();
        reject(new Error(`timed out after ${timeoutMs} ms; worker terminated`));
      }, timeoutMs);
      current.on('message', onMessage);
      current.on('error', onError);
      current.on('exit', onExit);
      current.ref();
      try {
        current.postMessage({ id, completion, context });
      } catch (error) {
        finish();
        reject(error);
      }
    });
  };

  const reward = ((completion: string, context: RewardContext): Promise<number> => {
    const result = queue.then(() => callWorker(completion, context));
    queue = result.catch(() => undefined);
    return result;
  }) as WorkerReward;
  reward.close = async (): Promise<void> => {
    closed = true;
    await queue;
    const last = worker;
    worker = undefined;
    if (last !== undefined) await last.terminate();
  };
  return reward;
}
