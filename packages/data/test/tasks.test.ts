// Synthetic tasks: byte-for-byte determinism, uniform counting answers, no fully hidden object,
// geometry answers that follow from the givens and agree with the drawn coordinates, and writers that
// round-trip. Expected values here come from the scene / diagram data and first principles (angles
// from coordinates, theorem per kind), never from the generators' own answer code.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parquetMetadata, parquetReadObjects } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import type { R1VSample } from '../src/schema.js';
import {
  CLEVR_RGB,
  type CountingQuery,
  type CountingSample,
  type GeometrySample,
  generateCountingTask,
  generateGeometryTask,
  groundTruthAnswer,
  registerTaskFont,
  type SceneObject,
  writeTaskDataset,
} from '../src/tasks/index.js';

const sha256 = (bytes: Uint8Array | string) => createHash('sha256').update(bytes).digest('hex');

/** Hash of every file under dir, by relative path. */
function hashTree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (sub: string) => {
    for (const entry of readdirSync(join(dir, sub), { withFileTypes: true })) {
      const rel = sub ? `${sub}/${entry.name}` : entry.name;
      if (entry.isDirectory()) walk(rel);
      else out[rel] = sha256(readFileSync(join(dir, rel)));
    }
  };
  walk('');
  return out;
}

const tmp = () => mkdtemp(join(tmpdir(), 'othink-tasks-'));

describe('determinism', () => {
  it('same seed: identical PNG bytes, fields and written files (JSONL and parquet)', async () => {
    const make = () => [
      ...generateCountingTask({ n: 6, seed: 11, thinking: true }),
      ...generateGeometryTask({ n: 6, seed: 11, thinking: true }),
    ];
    const a = make();
    const b = make();
    expect(a.map((s) => sha256(s.image as Uint8Array))).toEqual(b.map((s) => sha256(s.image as Uint8Array)));
    expect(a.map((s) => ({ ...s, image: undefined }))).toEqual(b.map((s) => ({ ...s, image: undefined })));
    for (const format of ['jsonl', 'parquet'] as const) {
      const [da, db] = [await tmp(), await tmp()];
      await writeTaskDataset(a, da, { format });
      await writeTaskDataset(b, db, { format });
      const ha = hashTree(da);
      expect(Object.keys(ha).length).toBe(format === 'jsonl' ? 13 : 1);
      expect(hashTree(db)).toEqual(ha);
    }
  });

  it('sample i does not depend on n, and another seed gives other samples', () => {
    const long = generateCountingTask({ n: 5, seed: 3 });
    const short = generateCountingTask({ n: 2, seed: 3 });
    expect(short.map((s) => sha256(s.image))).toEqual(long.slice(0, 2).map((s) => sha256(s.image)));
    const other = generateCountingTask({ n: 5, seed: 4 });
    expect(other.map((s) => sha256(s.image))).not.toEqual(long.map((s) => sha256(s.image)));
    const geo = generateGeometryTask({ n: 4, seed: 3 });
    expect(generateGeometryTask({ n: 2, seed: 3 }).map((s) => s.problem)).toEqual(
      geo.slice(0, 2).map((s) => s.problem),
    );
  });
});

// ---------------------------------------------------------------------------------------------------
// Counting

/** The answer to a query, evaluated here from the scene (independent of the generator). */
function countByHand(objects: SceneObject[], query: CountingQuery): number {
  const has = (o: SceneObject, f: Record<string, string | undefined>) =>
    Object.entries(f).every(([k, v]) => (o as unknown as Record<string, string>)[k] === v);
  let n = 0;
  for (const o of objects) {
    if (query.type === 'count' && has(o, query.filter)) n++;
    if (query.type === 'subtract' && !has(o, query.remove)) n++;
    if (query.type === 'left-after-removing' && has(o, query.count) && !has(o, query.remove)) n++;
  }
  return n;
}

const QUESTION_PATTERNS = [
  /^How many items are there in the image\?$/,
  /^How many objects are there\?$/,
  /^How many ((small|large|gray|red|blue|green|brown|purple|cyan|yellow|rubber|metal) )*(cubes|spheres|cylinders|objects) are there\?$/,
  /^Subtract all [a-z ]+\. How many objects are left\?$/,
  /^How many [a-z]+ (cubes|spheres|cylinders) are left after removing all ((small|large|rubber|metal) objects|cubes|spheres|cylinders)\?$/,
];

describe('counting', () => {
  const samples = generateCountingTask({ n: 550, seed: 2024, width: 160, height: 120, thinking: true });

  it('answers 0..10 are roughly uniform', () => {
    const counts = new Array(11).fill(0);
    for (const s of samples) counts[Number(s.answer)]++;
    expect(counts.reduce((a, b) => a + b, 0)).toBe(550);
    // 50 expected per answer; a binomial(550, 1/11) stays within +-25 with overwhelming probability.
    for (const c of counts) expect(c).toBeGreaterThanOrEqual(25);
    for (const c of counts) expect(c).toBeLessThanOrEqual(75);
  });

  it("thinking: 'brief' states only the result", () => {
    const brief = generateCountingTask({ n: 40, seed: 2024, width: 160, height: 120, thinking: 'brief' });
    const full = generateCountingTask({ n: 40, seed: 2024, width: 160, height: 120 });
    brief.forEach((s, i) => {
      expect(s.answer).toBe(full[i].answer); // the same scenes and answers
      const n = s.answer;
      const pattern =
        s.query.type === 'count'
          ? new RegExp(`^<think>There (is|are) ${n} [a-z ]+\\.</think>$`)
          : new RegExp(`^<think>${n} (is|are) left\\.</think>$`);
      expect(s.thinking).toMatch(pattern);
    });
    expect(brief.filter((s) => s.query.type === 'count').length).toBeGreaterThan(0);
  });

  it('every answer agrees with its scene, and question / solution / thinking are well formed', () => {
    const templates = new Set<string>();
    for (const s of samples) {
      templates.add(s.template);
      expect(countByHand(s.scene.objects, s.query)).toBe(Number(s.answer));
      expect(s.solution).toBe(`<answer> ${s.answer} </answer>`);
      expect(groundTruthAnswer(s)).toBe(s.answer);
      expect(QUESTION_PATTERNS.some((p) => p.test(s.problem))).toBe(true);
      expect(s.thinking).toMatch(new RegExp(`^<think>.*\\b${s.answer}\\b.*</think>$`));
      expect(s.scene.objects.length).toBeGreaterThanOrEqual(1);
      expect(s.scene.objects.length).toBeLessThanOrEqual(10);
    }
    expect([...templates].sort()).toEqual(['count', 'left-after-removing', 'subtract', 'total']);
  });

  it('the R1-V question alone: "How many items are there in the image?" with answers 1..10', () => {
    const only = generateCountingTask({ n: 40, seed: 5, templates: ['total'], width: 160, height: 120 });
    for (const s of only) {
      expect(['How many items are there in the image?', 'How many objects are there?']).toContain(s.problem);
      expect(s.scene.objects.length).toBe(Number(s.answer));
      expect(Number(s.answer)).toBeGreaterThanOrEqual(1);
    }
  });

  it('no object is fully hidden: each centre lies outside every other bounding circle and shows its colour', () => {
    const scenes = generateCountingTask({ n: 40, seed: 77 });
    const floor = (y: number, h: number) => 118 + ((172 - 118) * (y + 0.5)) / h;
    let checked = 0;
    for (const s of scenes) {
      const { objects, width, height } = s.scene;
      const png = PNG.sync.read(Buffer.from(s.image));
      expect([png.width, png.height]).toEqual([width, height]);
      for (const o of objects) {
        expect(o.x - o.radius).toBeGreaterThanOrEqual(0);
        expect(o.x + o.radius).toBeLessThanOrEqual(width);
        expect(o.y - o.radius).toBeGreaterThanOrEqual(0);
        expect(o.y + o.radius).toBeLessThanOrEqual(height);
        for (const other of objects) {
          if (other !== o)
            expect(Math.hypot(o.x - other.x, o.y - other.y)).toBeGreaterThan(
              Math.max(o.radius, other.radius),
            );
        }
        // The pixel at the centre is nearest to the object's own CLEVR colour (not the floor, not another object).
        const i = (Math.round(o.y) * width + Math.round(o.x)) * 4;
        const px = [png.data[i], png.data[i + 1], png.data[i + 2]];
        const f = floor(Math.round(o.y), height);
        const candidates: [string, number[]][] = [...Object.entries(CLEVR_RGB), ['floor', [f, f, f]]];
        const dist = (c: number[]) => (c[0] - px[0]) ** 2 + (c[1] - px[1]) ** 2 + (c[2] - px[2]) ** 2;
        const nearest = candidates.reduce((best, c) => (dist(c[1]) < dist(best[1]) ? c : best));
        expect(nearest[0]).toBe(o.color);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(150);
  });

  it('rejects options it cannot honour', () => {
    expect(() => generateCountingTask({ n: -1, seed: 1 })).toThrow('n must be a non-negative integer');
    expect(() => generateCountingTask({ n: 1, seed: 1.5 })).toThrow('seed must be an integer');
    expect(() => generateCountingTask({ n: 1, seed: 1, templates: [] })).toThrow(
      'templates must be a non-empty subset',
    );
    expect(() => generateCountingTask({ n: 1, seed: 1, maxAnswer: 11 })).toThrow(
      'maxAnswer 11 > maxObjects 10',
    );
    expect(() => generateCountingTask({ n: 1, seed: 1, maxOverlap: 0.5 })).toThrow(
      'so no object is fully hidden',
    );
    expect(() => generateCountingTask({ n: 1, seed: 1, width: 20 })).toThrow('image size 20x320');
  });
});

// ---------------------------------------------------------------------------------------------------
// Geometry

type Pt = [number, number];
const sub = (a: Pt, b: Pt): Pt => [a[0] - b[0], a[1] - b[1]];
const len = (a: Pt, b: Pt) => Math.hypot(a[0] - b[0], a[1] - b[1]);
function angleAt(p: Pt, v: Pt, q: Pt): number {
  const [u, w] = [sub(p, v), sub(q, v)];
  const cos = (u[0] * w[0] + u[1] * w[1]) / (Math.hypot(...u) * Math.hypot(...w));
  return (Math.acos(Math.max(-1, Math.min(1, cos))) * 180) / Math.PI;
}
const cross = (a: Pt, b: Pt) => a[0] * b[1] - a[1] * b[0];

/** The answer each kind's theorem gives from the numeric givens alone. */
function answerFromGivens(s: GeometrySample): number {
  const g = s.diagram.givens.map((x) => x.value);
  const askedName = s.diagram.asked.points.join('');
  switch (s.kind) {
    case 'triangle-angle-sum':
      return 180 - g[0] - g[1];
    case 'exterior-angle':
      return g[0] + g[1];
    case 'isosceles-triangle':
      return askedName === 'ABC' ? (180 - g[0]) / 2 : 180 - 2 * g[0];
    case 'parallel-lines': {
      const given = s.diagram.givens[0].points.join('');
      const gAngle = given === 'BGH' ? 180 - g[0] : g[0]; // EGB and AGH equal GHD; BGH is co-interior
      return askedName === 'CHG' ? 180 - gAngle : gAngle;
    }
    case 'inscribed-angle':
      return askedName === 'ACB' ? g[0] / 2 : 2 * g[0];
    case 'thales':
      return 90 - g[0];
    case 'pythagoras': {
      const [, a, b] = g; // g[0] is the right angle
      return askedName === 'AB' ? Math.sqrt(a * a + b * b) : Math.sqrt(a * a - b * b);
    }
    case 'similar-triangles':
      return g.length === 1 ? g[0] / 2 : (g[2] * (g[0] + g[1])) / g[0];
  }
}

describe('geometry', () => {
  const samples = generateGeometryTask({ n: 160, seed: 99, thinking: true });

  it('covers every kind, with answers carrying units', () => {
    expect(new Set(samples.map((s) => s.kind)).size).toBe(8);
    for (const s of samples) {
      const unit = s.diagram.asked.type === 'angle' ? '°' : 'cm';
      expect(s.answer).toMatch(new RegExp(`^[1-9][0-9]*${unit}$`));
      expect(s.solution).toBe(`<answer> ${s.answer} </answer>`);
      expect(groundTruthAnswer(s)).toBe(s.answer);
      expect(s.thinking).toMatch(new RegExp(`^<think>.*${s.answer}\\.</think>$`));
      const png = PNG.sync.read(Buffer.from(s.image));
      expect([png.width, png.height]).toEqual([400, 300]);
    }
  });

  it('the answer follows from the stated givens by the kind’s theorem', () => {
    for (const s of samples) {
      expect(answerFromGivens(s)).toBe(Number.parseInt(s.answer, 10));
      for (const g of s.diagram.givens) {
        if (g.type === 'angle' && g.value === 90 && s.kind === 'pythagoras') continue; // stated as ∠C = 90°
        expect(s.problem).toContain(`${g.value}${g.type === 'angle' ? '°' : 'cm'}`);
      }
    }
  });

  it('the drawing is to scale: givens, facts and the answer all hold in the coordinates', () => {
    for (const s of samples) {
      const P = s.diagram.points as Record<string, Pt>;
      const measure = (m: { type: string; points: string[] }) =>
        m.type === 'angle'
          ? angleAt(P[m.points[0]], P[m.points[1]], P[m.points[2]])
          : len(P[m.points[0]], P[m.points[1]]);
      for (const g of s.diagram.givens) expect(Math.abs(measure(g) - g.value)).toBeLessThan(1e-9);
      expect(Math.abs(measure(s.diagram.asked) - Number.parseInt(s.answer, 10))).toBeLessThan(1e-9);
      for (const f of s.diagram.facts) {
        if (f.type === 'parallel') {
          const [[a, b], [c, d]] = f.lines;
          expect(Math.abs(cross(sub(P[b], P[a]), sub(P[d], P[c])))).toBeLessThan(1e-9);
        } else if (f.type === 'collinear') {
          for (const p of f.points.slice(2)) {
            expect(
              Math.abs(cross(sub(P[f.points[1]], P[f.points[0]]), sub(P[p], P[f.points[0]]))),
            ).toBeLessThan(1e-9);
          }
        } else if (f.type === 'on-circle') {
          for (const p of f.points) expect(Math.abs(len(P[p], P[f.center]) - f.radius)).toBeLessThan(1e-9);
        } else if (f.type === 'equal-length') {
          const [[a, b], [c, d]] = f.segments;
          expect(Math.abs(len(P[a], P[b]) - len(P[c], P[d]))).toBeLessThan(1e-9);
        } else if (f.type === 'midpoint') {
          const [a, b] = f.of;
          expect(len(P[f.point], [(P[a][0] + P[b][0]) / 2, (P[a][1] + P[b][1]) / 2])).toBeLessThan(1e-9);
        }
      }
    }
  });

  it('rejects unknown kinds and a missing font file', () => {
    // @ts-expect-error: checked at run time
    expect(() => generateGeometryTask({ n: 1, seed: 1, kinds: ['hexagon'] })).toThrow(
      'unknown kinds hexagon',
    );
    expect(() => generateGeometryTask({ n: 1, seed: 1, fontPath: '/nonexistent/font.ttf' })).toThrow(
      'font file /nonexistent/font.ttf not found',
    );
    expect(registerTaskFont()).toBe(registerTaskFont());
  });
});

// ---------------------------------------------------------------------------------------------------
// Writers and the answer helper

describe('writeTaskDataset', () => {
  const samples: R1VSample[] = [
    ...generateCountingTask({ n: 3, seed: 8, thinking: true }),
    ...generateGeometryTask({ n: 3, seed: 8 }),
  ];

  it('JSONL: rows with image paths next to the PNGs, all fields round-trip', async () => {
    const dir = await tmp();
    const written = await writeTaskDataset(samples, dir, { format: 'jsonl' });
    expect(written.dataFile).toBe(join(dir, 'train.jsonl'));
    const rows = readFileSync(written.dataFile, 'utf8')
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(rows.length).toBe(6);
    rows.forEach((row, i) => {
      expect(row.image).toBe(`images/train-${String(i).padStart(6, '0')}.png`);
      expect(readFileSync(join(dir, row.image)).equals(Buffer.from(samples[i].image as Uint8Array))).toBe(
        true,
      );
      expect({ ...row, image: undefined }).toEqual({ ...samples[i], image: undefined });
    });
    expect(rows[0].thinking).toMatch(/^<think>/);
    expect('thinking' in rows[5]).toBe(false);
  });

  it('parquet: HF image struct {bytes, path}, strings as columns, objects as JSON text', async () => {
    const dir = await tmp();
    const written = await writeTaskDataset(samples, dir, { format: 'parquet', split: 'test' });
    expect(written.dataFile).toBe(join(dir, 'data', 'test-00000-of-00001.parquet'));
    const file = new Uint8Array(readFileSync(written.dataFile)).buffer;
    const rows = (await parquetReadObjects({ file, utf8: false, compressors })) as Record<string, unknown>[];
    expect(rows.length).toBe(6);
    rows.forEach((row, i) => {
      const s = samples[i];
      const image = row.image as { bytes: Uint8Array; path: string };
      expect(Buffer.from(image.bytes).equals(Buffer.from(s.image as Uint8Array))).toBe(true);
      expect(image.path).toBe(`test-${String(i).padStart(6, '0')}.png`);
      expect([row.problem, row.solution, row.answer, row.task]).toEqual([
        s.problem,
        s.solution,
        s.answer,
        s.task,
      ]);
      expect(row.thinking ?? undefined).toEqual(s.thinking);
      if (s.task === 'counting') {
        expect(JSON.parse(row.scene as string)).toEqual((s as CountingSample).scene);
        expect(row.diagram).toBe(null);
      } else {
        expect(JSON.parse(row.diagram as string)).toEqual((s as GeometrySample).diagram);
      }
    });
    const hf = parquetMetadata(file).key_value_metadata?.find((kv) => kv.key === 'huggingface');
    expect(JSON.parse(hf!.value!).info.features.image).toEqual({ _type: 'Image' });
  });

  it('refuses what it cannot write', async () => {
    const dir = await tmp();
    const onDisk: R1VSample = { image: 'a.png', problem: 'q', solution: 's' };
    await expect(writeTaskDataset([onDisk], dir, { format: 'jsonl' })).rejects.toThrow(
      'sample 0 has an image path',
    );
    const notImage: R1VSample = { image: new Uint8Array([1, 2, 3]), problem: 'q', solution: 's' };
    await expect(writeTaskDataset([notImage], dir, { format: 'parquet' })).rejects.toThrow(
      'not a PNG/JPEG/WebP image',
    );
    // @ts-expect-error: checked at run time
    await expect(writeTaskDataset(samples, dir, { format: 'csv' })).rejects.toThrow(
      "format must be 'jsonl' or 'parquet'",
    );
    await expect(writeTaskDataset(samples, dir, { format: 'jsonl', split: '../x' })).rejects.toThrow(
      'not a plain file name',
    );
  });
});

describe('groundTruthAnswer', () => {
  it('extracts like R1-V: first <answer> on one line, Python-stripped; else the whole solution', () => {
    expect(groundTruthAnswer('<answer> 3 </answer>')).toBe('3');
    expect(groundTruthAnswer('<answer>70°</answer>')).toBe('70°');
    expect(groundTruthAnswer('<think>x</think><answer> 5cm </answer><answer>6</answer>')).toBe('5cm');
    expect(groundTruthAnswer('  140°\n')).toBe('140°');
    expect(groundTruthAnswer('<answer>\n3\n</answer>')).toBe('<answer>\n3\n</answer>');
    expect(groundTruthAnswer('<answer>\x1c7\x85</answer>')).toBe('7');
    expect(groundTruthAnswer({ image: '', problem: '', solution: '<answer> 10 </answer>' })).toBe('10');
  });
});
