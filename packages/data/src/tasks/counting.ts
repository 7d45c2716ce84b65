// Synthetic visual counting (paper-spec §4: CLEVR CoGenT / R1-V counting): CLEVR-like scenes of cubes,
// spheres and cylinders in CLEVR's 8 colours, 2 sizes and 2 materials, with CLEVR-style counting
// questions whose answers (0..10) are drawn uniformly first and the scene built to match.
import { createCanvas, type SKRSContext2D } from '@napi-rs/canvas';
import type { R1VSample } from '../schema.js';
import { TaskRng } from './random.js';

/** Smallest image side a scene is drawn at. */
export const COUNTING_MIN_SIZE = 64;
export const CLEVR_SHAPES = ['cube', 'sphere', 'cylinder'] as const;
export const CLEVR_COLORS = ['gray', 'red', 'blue', 'green', 'brown', 'purple', 'cyan', 'yellow'] as const;
export const CLEVR_SIZES = ['small', 'large'] as const;
export const CLEVR_MATERIALS = ['rubber', 'metal'] as const;
export type ClevrShape = (typeof CLEVR_SHAPES)[number];
export type ClevrColor = (typeof CLEVR_COLORS)[number];
export type ClevrSize = (typeof CLEVR_SIZES)[number];
export type ClevrMaterial = (typeof CLEVR_MATERIALS)[number];

/** CLEVR's `properties.json` RGB values. */
export const CLEVR_RGB: Record<ClevrColor, [number, number, number]> = {
  gray: [87, 87, 87],
  red: [173, 35, 35],
  blue: [42, 75, 215],
  green: [29, 105, 20],
  brown: [129, 74, 25],
  purple: [129, 38, 192],
  cyan: [41, 208, 208],
  yellow: [255, 238, 51],
};

export interface SceneObject {
  shape: ClevrShape;
  color: ClevrColor;
  size: ClevrSize;
  material: ClevrMaterial;
  /** Centre of the object's bounding circle in pixels; the object's own pixels cover it. */
  x: number;
  y: number;
  /** Radius of a circle around (x, y) that contains the whole silhouette. */
  radius: number;
}

/** Attributes an object must have; an empty filter matches every object. */
export interface ObjectFilter {
  shape?: ClevrShape;
  color?: ClevrColor;
  size?: ClevrSize;
  material?: ClevrMaterial;
}

export type CountingTemplate = 'total' | 'count' | 'subtract' | 'left-after-removing';
export const COUNTING_TEMPLATES: readonly CountingTemplate[] = [
  'total',
  'count',
  'subtract',
  'left-after-removing',
];

/** What a question asks, in a form a program can evaluate (see `evaluateCountingQuery`). */
export type CountingQuery =
  /** Objects matching `filter` (an empty filter: all objects). */
  | { type: 'count'; filter: ObjectFilter }
  /** Objects left after removing those matching `remove`. */
  | { type: 'subtract'; remove: ObjectFilter }
  /** Objects matching `count` that do not match `remove`. */
  | { type: 'left-after-removing'; count: ObjectFilter; remove: ObjectFilter };

export interface CountingTaskOptions {
  /** Number of samples. */
  n: number;
  /** Same seed, same samples, byte for byte; sample i does not depend on n. */
  seed: number;
  /** Image size (CLEVR renders 480x320). */
  width?: number;
  height?: number;
  /** Question templates to draw from (default all four). */
  templates?: readonly CountingTemplate[];
  /** Answers are drawn uniformly from [minAnswer, maxAnswer] (default 0..10; `total` needs >= 1). */
  minAnswer?: number;
  maxAnswer?: number;
  /** Most objects in a scene (default 10, like CLEVR). */
  maxObjects?: number;
  /** Fewest objects in a scene where the answer allows (default 3, like CLEVR). */
  minObjects?: number;
  /**
   * How far two bounding circles may overlap, as a fraction of the sum of their radii (default 0.1).
   * Kept below the ratio that would let a small object's centre fall inside a large one, so no object
   * is ever fully hidden.
   */
  maxOverlap?: number;
  /**
   * Add a `<think>...</think>` reasoning trace (SFT targets): `true` lists the objects counted,
   * `'brief'` only states the result ("There are 3 objects.", short enough for tiny models to learn
   * quickly). Default false.
   */
  thinking?: boolean | 'brief';
}

/** Sample fields beyond R1-V's: the ground truth in structured form. */
export interface CountingSample extends R1VSample {
  image: Uint8Array;
  task: 'counting';
  /** The answer as a string, e.g. `'3'` (also in `solution` as `<answer> 3 </answer>`). */
  answer: string;
  template: CountingTemplate;
  query: CountingQuery;
  scene: { width: number; height: number; objects: SceneObject[] };
}

const ATTRIBUTES = ['size', 'color', 'material', 'shape'] as const;
type Attribute = (typeof ATTRIBUTES)[number];
const VALUES: { [K in Attribute]: readonly NonNullable<ObjectFilter[K]>[] } = {
  size: CLEVR_SIZES,
  color: CLEVR_COLORS,
  material: CLEVR_MATERIALS,
  shape: CLEVR_SHAPES,
};

export function matchesFilter(
  object: Omit<SceneObject, 'x' | 'y' | 'radius'>,
  filter: ObjectFilter,
): boolean {
  return ATTRIBUTES.every((a) => filter[a] === undefined || filter[a] === object[a]);
}

/** The answer to a query about a list of objects. */
export function evaluateCountingQuery(objects: readonly SceneObject[], query: CountingQuery): number {
  switch (query.type) {
    case 'count':
      return objects.filter((o) => matchesFilter(o, query.filter)).length;
    case 'subtract':
      return objects.filter((o) => !matchesFilter(o, query.remove)).length;
    case 'left-after-removing':
      return objects.filter((o) => matchesFilter(o, query.count) && !matchesFilter(o, query.remove)).length;
  }
}

const PLURAL: Record<ClevrShape, string> = { cube: 'cubes', sphere: 'spheres', cylinder: 'cylinders' };

/** CLEVR word order: size, colour, material, shape (`small red metal cubes`, `rubber things`). */
export function describeFilter(filter: ObjectFilter, count: 'one' | 'many'): string {
  const words = [filter.size, filter.color, filter.material].filter((w) => w !== undefined);
  const noun = filter.shape
    ? count === 'one'
      ? filter.shape
      : PLURAL[filter.shape]
    : count === 'one'
      ? 'object'
      : 'objects';
  return [...words, noun].join(' ');
}

function questionFor(query: CountingQuery, rng: TaskRng): string {
  switch (query.type) {
    case 'count':
      if (Object.keys(query.filter).length === 0) {
        // The R1-V / paper question, and CLEVR's.
        return rng.pick(['How many items are there in the image?', 'How many objects are there?']);
      }
      return `How many ${describeFilter(query.filter, 'many')} are there?`;
    case 'subtract':
      return `Subtract all ${describeFilter(query.remove, 'many')}. How many objects are left?`;
    case 'left-after-removing':
      return `How many ${describeFilter(query.count, 'many')} are left after removing all ${describeFilter(query.remove, 'many')}?`;
  }
}

/** "2 large red rubber cubes and 1 small cyan metal sphere" */
function listObjects(objects: readonly SceneObject[]): string {
  const groups = new Map<string, number>();
  for (const o of objects) {
    const key = `${o.size} ${o.color} ${o.material} ${o.shape}`;
    groups.set(key, (groups.get(key) ?? 0) + 1);
  }
  const parts = [...groups].map(([key, k]) => {
    const [size, color, material, shape] = key.split(' ') as [
      ClevrSize,
      ClevrColor,
      ClevrMaterial,
      ClevrShape,
    ];
    return `${k} ${describeFilter({ size, color, material, shape }, k === 1 ? 'one' : 'many')}`;
  });
  return parts.length <= 1
    ? (parts[0] ?? 'none')
    : `${parts.slice(0, -1).join(', ')} and ${parts[parts.length - 1]}`;
}

/** The one-sentence trace of thinking: 'brief'. */
function briefThinkingFor(query: CountingQuery, answer: number): string {
  const verb = answer === 1 ? 'is' : 'are';
  const text =
    query.type === 'count'
      ? `There ${verb} ${answer} ${describeFilter(query.filter, answer === 1 ? 'one' : 'many')}.`
      : `${answer} ${answer === 1 ? 'is' : 'are'} left.`;
  return `<think>${text}</think>`;
}

function thinkingFor(query: CountingQuery, objects: readonly SceneObject[], answer: number): string {
  let text: string;
  switch (query.type) {
    case 'count': {
      const matching = objects.filter((o) => matchesFilter(o, query.filter));
      text =
        Object.keys(query.filter).length === 0
          ? `I count the objects in the scene: ${listObjects(objects)}. That makes ${answer} in total.`
          : `I look for ${describeFilter(query.filter, 'many')}: ${matching.length ? listObjects(matching) : 'there are none'}. So there are ${answer}.`;
      break;
    }
    case 'subtract': {
      const removed = objects.filter((o) => matchesFilter(o, query.remove));
      text = `There are ${objects.length} objects, and ${removed.length} of them ${removed.length === 1 ? 'is a' : 'are'} ${describeFilter(query.remove, removed.length === 1 ? 'one' : 'many')} (${listObjects(removed)}). Removing them leaves ${objects.length} - ${removed.length} = ${answer}.`;
      break;
    }
    case 'left-after-removing': {
      const counted = objects.filter((o) => matchesFilter(o, query.count));
      const removed = counted.length - answer;
      const what = describeFilter(query.count, counted.length === 1 ? 'one' : 'many');
      text =
        query.remove.shape !== undefined
          ? `Removing all ${describeFilter(query.remove, 'many')} does not remove any ${describeFilter(query.count, 'many')}, and there ${counted.length === 1 ? 'is' : 'are'} ${counted.length} ${what}, so ${answer} ${answer === 1 ? 'is' : 'are'} left.`
          : `There ${counted.length === 1 ? 'is' : 'are'} ${counted.length} ${what}, and ${removed} of them ${removed === 1 ? 'is' : 'are'} ${describeFilter(query.remove, 'one').replace(/ object$/, '')}. Removing all ${describeFilter(query.remove, 'many')} leaves ${counted.length} - ${removed} = ${answer}.`;
      break;
    }
  }
  return `<think>${text}</think>`;
}

type Attributes = Omit<SceneObject, 'x' | 'y' | 'radius'>;

/** Random attributes with `must` fixed and matching none of `mustNot` (free attributes resampled). */
function randomAttributes(
  rng: TaskRng,
  must: ObjectFilter = {},
  mustNot: readonly ObjectFilter[] = [],
): Attributes {
  for (let attempt = 0; attempt < 1000; attempt++) {
    const o: Attributes = {
      shape: must.shape ?? rng.pick(CLEVR_SHAPES),
      color: must.color ?? rng.pick(CLEVR_COLORS),
      size: must.size ?? rng.pick(CLEVR_SIZES),
      material: must.material ?? rng.pick(CLEVR_MATERIALS),
    };
    if (!mustNot.some((f) => matchesFilter(o, f))) return o;
  }
  throw new Error(`no object matches ${JSON.stringify(must)} but none of ${JSON.stringify(mustNot)}`);
}

/** A filter on 1..2 random attributes (sometimes 3). */
function randomFilter(rng: TaskRng): ObjectFilter {
  const k = rng.pick([1, 1, 2, 2, 2, 3]);
  const filter: ObjectFilter = {};
  for (const a of rng.shuffled(ATTRIBUTES).slice(0, k)) {
    (filter as Record<Attribute, string>)[a] = rng.pick(VALUES[a]);
  }
  return filter;
}

interface Plan {
  query: CountingQuery;
  attributes: Attributes[];
}

/** Objects and query for a wanted answer under a template, or undefined when the template cannot give it. */
function planScene(
  template: CountingTemplate,
  answer: number,
  rng: TaskRng,
  minObjects: number,
  maxObjects: number,
): Plan | undefined {
  const extra = (atLeast: number, used: number) =>
    rng.int(Math.max(atLeast, minObjects - used), Math.max(atLeast, maxObjects - used));
  switch (template) {
    case 'total': {
      if (answer < 1 || answer > maxObjects) return undefined;
      return {
        query: { type: 'count', filter: {} },
        attributes: Array.from({ length: answer }, () => randomAttributes(rng)),
      };
    }
    case 'count': {
      if (answer > maxObjects) return undefined;
      const filter = randomFilter(rng);
      const others = extra(answer === 0 ? 1 : 0, answer);
      return {
        query: { type: 'count', filter },
        attributes: [
          ...Array.from({ length: answer }, () => randomAttributes(rng, filter)),
          ...Array.from({ length: others }, () => randomAttributes(rng, {}, [filter])),
        ],
      };
    }
    case 'subtract': {
      if (answer + 1 > maxObjects) return undefined;
      const remove = randomFilter(rng);
      const removed = extra(1, answer);
      return {
        query: { type: 'subtract', remove },
        attributes: [
          ...Array.from({ length: removed }, () => randomAttributes(rng, remove)),
          ...Array.from({ length: answer }, () => randomAttributes(rng, {}, [remove])),
        ],
      };
    }
    case 'left-after-removing': {
      if (answer + 1 > maxObjects) return undefined;
      const count: ObjectFilter = { color: rng.pick(CLEVR_COLORS), shape: rng.pick(CLEVR_SHAPES) };
      const by = rng.pick(['size', 'material', 'shape'] as const);
      if (by === 'shape') {
        // "... left after removing all spheres?": the removed shape differs, so the count is unchanged.
        const remove: ObjectFilter = { shape: rng.pick(CLEVR_SHAPES.filter((x) => x !== count.shape)) };
        const removed = rng.int(1, Math.min(3, maxObjects - answer));
        const others = extra(0, answer + removed);
        return {
          query: { type: 'left-after-removing', count, remove },
          attributes: [
            ...Array.from({ length: removed }, () => randomAttributes(rng, remove)),
            ...Array.from({ length: answer }, () => randomAttributes(rng, count)),
            ...Array.from({ length: others }, () => randomAttributes(rng, {}, [count])),
          ],
        };
      }
      const remove: ObjectFilter =
        by === 'size' ? { size: rng.pick(CLEVR_SIZES) } : { material: rng.pick(CLEVR_MATERIALS) };
      const both = rng.int(1, Math.min(3, maxObjects - answer));
      const others = extra(0, answer + both);
      return {
        query: { type: 'left-after-removing', count, remove },
        attributes: [
          ...Array.from({ length: both }, () => randomAttributes(rng, { ...count, ...remove })),
          ...Array.from({ length: answer }, () => randomAttributes(rng, count, [remove])),
          ...Array.from({ length: others }, () => randomAttributes(rng, {}, [count])),
        ],
      };
    }
  }
}

/** Bounding radius, as a fraction of the image height, of a large / small object nearest the camera. */
const LARGE_RADIUS = 0.11;
const SMALL_RADIUS = 0.06;
/** Perspective: objects at the far edge of the floor are this much smaller. */
const FAR_SCALE = 0.7;

/** Bounding radius of an object at depth fraction v (0 far .. 1 near). */
function objectRadius(size: ClevrSize, v: number, height: number): number {
  return (size === 'large' ? LARGE_RADIUS : SMALL_RADIUS) * height * (FAR_SCALE + (1 - FAR_SCALE) * v);
}

/** Random positions with bounded overlap; undefined when the objects do not fit. */
function placeObjects(
  attributes: readonly Attributes[],
  rng: TaskRng,
  width: number,
  height: number,
  maxOverlap: number,
): SceneObject[] | undefined {
  const yTop = 0.28 * height;
  const yBottom = 0.9 * height;
  const placed: SceneObject[] = [];
  for (const a of attributes) {
    let ok = false;
    for (let attempt = 0; attempt < 400 && !ok; attempt++) {
      const v = rng.float();
      const y = yTop + v * (yBottom - yTop);
      const radius = objectRadius(a.size, v, height);
      const x = rng.uniform(radius + 2, width - radius - 2);
      if (y - radius < 1 || y + radius > height - 1) continue;
      ok = placed.every((p) => Math.hypot(p.x - x, p.y - y) >= (1 - maxOverlap) * (p.radius + radius));
      if (ok) placed.push({ ...a, x, y, radius });
    }
    if (!ok) return undefined;
  }
  // Painter's order: far (small y) first.
  return placed.sort((p, q) => p.y - q.y);
}

type Gradient = ReturnType<SKRSContext2D['createLinearGradient']>;

function shade([r, g, b]: [number, number, number], f: number): string {
  // f > 0 mixes toward white, f < 0 toward black.
  const mix = (c: number) => Math.round(f >= 0 ? c + (255 - c) * f : c * (1 + f));
  return `rgb(${mix(r)},${mix(g)},${mix(b)})`;
}

function drawObject(ctx: SKRSContext2D, o: SceneObject): void {
  const base = CLEVR_RGB[o.color];
  const metal = o.material === 'metal';
  const R = o.radius;
  const { x, y } = o;
  if (o.shape === 'sphere') {
    const g = ctx.createRadialGradient(
      x - 0.35 * R,
      y - 0.35 * R,
      0.05 * R,
      x - 0.35 * R,
      y - 0.35 * R,
      1.3 * R,
    );
    g.addColorStop(0, shade(base, metal ? 0.6 : 0.3));
    g.addColorStop(0.3, shade(base, 0));
    g.addColorStop(1, shade(base, metal ? -0.6 : -0.45));
    ctx.fillStyle = g;
    ctx.beginPath();
    ctx.arc(x, y, 0.95 * R, 0, 2 * Math.PI);
    ctx.fill();
    if (metal) {
      ctx.fillStyle = 'rgba(255,255,255,0.85)';
      ctx.beginPath();
      ctx.ellipse(x - 0.42 * R, y - 0.48 * R, 0.16 * R, 0.1 * R, -0.6, 0, 2 * Math.PI);
      ctx.fill();
    }
  } else if (o.shape === 'cube') {
    const h = 0.5 * R;
    const cx = x - 0.12 * R;
    const cy = y + 0.12 * R;
    const d = 0.25 * R;
    const poly = (pts: [number, number][], fill: string | Gradient) => {
      ctx.fillStyle = fill;
      ctx.beginPath();
      ctx.moveTo(pts[0][0], pts[0][1]);
      for (const [px, py] of pts.slice(1)) ctx.lineTo(px, py);
      ctx.closePath();
      ctx.fill();
      ctx.strokeStyle = shade(base, -0.5);
      ctx.lineWidth = Math.max(0.6, 0.03 * R);
      ctx.stroke();
    };
    poly(
      [
        [cx - h, cy - h],
        [cx + h, cy - h],
        [cx + h + d, cy - h - d],
        [cx - h + d, cy - h - d],
      ],
      shade(base, metal ? 0.45 : 0.25),
    );
    poly(
      [
        [cx + h, cy - h],
        [cx + h + d, cy - h - d],
        [cx + h + d, cy + h - d],
        [cx + h, cy + h],
      ],
      shade(base, metal ? -0.5 : -0.3),
    );
    let front: string | Gradient = shade(base, 0);
    if (metal) {
      front = ctx.createLinearGradient(cx - h, cy - h, cx + h, cy + h);
      front.addColorStop(0, shade(base, 0.35));
      front.addColorStop(0.5, shade(base, 0));
      front.addColorStop(1, shade(base, -0.25));
    }
    poly(
      [
        [cx - h, cy - h],
        [cx + h, cy - h],
        [cx + h, cy + h],
        [cx - h, cy + h],
      ],
      front,
    );
  } else {
    const w = 0.55 * R;
    const ry = 0.2 * R;
    const top = y - 0.55 * R;
    const bottom = y + 0.55 * R;
    const g = ctx.createLinearGradient(x - w, 0, x + w, 0);
    g.addColorStop(0, shade(base, metal ? -0.3 : -0.15));
    g.addColorStop(0.4, shade(base, metal ? 0.15 : 0));
    g.addColorStop(0.6, shade(base, 0));
    g.addColorStop(1, shade(base, metal ? -0.6 : -0.4));
    ctx.fillStyle = g;
    ctx.beginPath();
    ctx.moveTo(x - w, top);
    ctx.lineTo(x - w, bottom);
    ctx.ellipse(x, bottom, w, ry, 0, Math.PI, 0, true);
    ctx.lineTo(x + w, top);
    ctx.closePath();
    ctx.fill();
    ctx.fillStyle = shade(base, metal ? 0.45 : 0.25);
    ctx.beginPath();
    ctx.ellipse(x, top, w, ry, 0, 0, 2 * Math.PI);
    ctx.fill();
  }
}

/** The PNG of a scene: floor, soft shadows, then the objects far to near. */
export function renderCountingScene(
  width: number,
  height: number,
  objects: readonly SceneObject[],
): Uint8Array {
  const canvas = createCanvas(width, height);
  const ctx = canvas.getContext('2d');
  const floor = ctx.createLinearGradient(0, 0, 0, height);
  floor.addColorStop(0, 'rgb(118,118,116)');
  floor.addColorStop(1, 'rgb(172,172,170)');
  ctx.fillStyle = floor;
  ctx.fillRect(0, 0, width, height);
  ctx.fillStyle = 'rgba(0,0,0,0.22)';
  for (const o of objects) {
    ctx.beginPath();
    ctx.ellipse(
      o.x + 0.3 * o.radius,
      o.y + 0.7 * o.radius,
      0.9 * o.radius,
      0.3 * o.radius,
      0,
      0,
      2 * Math.PI,
    );
    ctx.fill();
  }
  for (const o of objects) drawObject(ctx, o);
  const png = canvas.encodeSync('png');
  return new Uint8Array(png.buffer, png.byteOffset, png.byteLength);
}

function checkOptions(
  o: Required<Omit<CountingTaskOptions, 'templates'>> & { templates: readonly CountingTemplate[] },
): void {
  if (!Number.isInteger(o.n) || o.n < 0)
    throw new Error(`generateCountingTask: n must be a non-negative integer, got ${o.n}`);
  if (
    !Number.isInteger(o.width) ||
    !Number.isInteger(o.height) ||
    o.width < COUNTING_MIN_SIZE ||
    o.height < COUNTING_MIN_SIZE
  ) {
    throw new Error(
      `generateCountingTask: image size ${o.width}x${o.height} must be integers >= ${COUNTING_MIN_SIZE}`,
    );
  }
  if (o.templates.length === 0 || o.templates.some((t) => !COUNTING_TEMPLATES.includes(t))) {
    throw new Error(
      `generateCountingTask: templates must be a non-empty subset of ${COUNTING_TEMPLATES.join(', ')}`,
    );
  }
  if (!(Number.isInteger(o.maxObjects) && o.maxObjects >= 1 && o.maxObjects <= 10)) {
    throw new Error(`generateCountingTask: maxObjects must be 1..10, got ${o.maxObjects}`);
  }
  if (
    !(
      Number.isInteger(o.minAnswer) &&
      Number.isInteger(o.maxAnswer) &&
      0 <= o.minAnswer &&
      o.minAnswer <= o.maxAnswer
    )
  ) {
    throw new Error(
      `generateCountingTask: need integers 0 <= minAnswer <= maxAnswer, got ${o.minAnswer}..${o.maxAnswer}`,
    );
  }
  if (o.maxAnswer > o.maxObjects) {
    throw new Error(`generateCountingTask: maxAnswer ${o.maxAnswer} > maxObjects ${o.maxObjects}`);
  }
  if (o.minAnswer === 0 && o.templates.length === 1 && o.templates[0] === 'total' && o.maxAnswer === 0) {
    throw new Error('generateCountingTask: the total template cannot have answer 0');
  }
  // A small object's centre must stay outside a large neighbour's circle: overlap < r_small / (r_small + r_large).
  const limit = (SMALL_RADIUS * FAR_SCALE) / (SMALL_RADIUS * FAR_SCALE + LARGE_RADIUS);
  if (!(o.maxOverlap >= 0 && o.maxOverlap < limit)) {
    throw new Error(
      `generateCountingTask: maxOverlap must be in [0, ${limit.toFixed(3)}) so no object is fully hidden`,
    );
  }
}

/** `n` counting samples in the R1-V schema (`<answer> 3 </answer>`), reproducible from `seed`. */
export function generateCountingTask(options: CountingTaskOptions): CountingSample[] {
  const o = {
    width: 480,
    height: 320,
    templates: COUNTING_TEMPLATES,
    minAnswer: 0,
    maxAnswer: 10,
    maxObjects: 10,
    minObjects: 3,
    maxOverlap: 0.1,
    thinking: false,
    ...options,
  };
  checkOptions(o);
  const samples: CountingSample[] = [];
  for (let i = 0; i < o.n; i++) {
    const rng = new TaskRng(o.seed, i, 1);
    // The answer first (uniform), then a template that can produce it, then a scene that does.
    const minAnswer = o.templates.every((t) => t === 'total') ? Math.max(1, o.minAnswer) : o.minAnswer;
    const answer = rng.int(minAnswer, o.maxAnswer);
    let objects: SceneObject[] | undefined;
    let plan: Plan | undefined;
    let template: CountingTemplate = o.templates[0];
    for (let attempt = 0; attempt < 200 && !objects; attempt++) {
      template = rng.pick(o.templates);
      plan = planScene(template, answer, rng, o.minObjects, o.maxObjects);
      if (plan) objects = placeObjects(rng.shuffled(plan.attributes), rng, o.width, o.height, o.maxOverlap);
    }
    if (!objects || !plan) {
      throw new Error(
        `generateCountingTask: sample ${i}: could not build a scene with answer ${answer} (image too small?)`,
      );
    }
    const check = evaluateCountingQuery(objects, plan.query);
    if (check !== answer)
      throw new Error(`generateCountingTask: internal error, planned ${answer} but the scene gives ${check}`);
    const sample: CountingSample = {
      image: renderCountingScene(o.width, o.height, objects),
      problem: questionFor(plan.query, rng),
      solution: `<answer> ${answer} </answer>`,
      task: 'counting',
      answer: String(answer),
      template,
      query: plan.query,
      scene: { width: o.width, height: o.height, objects },
    };
    if (o.thinking === 'brief') sample.thinking = briefThinkingFor(plan.query, answer);
    else if (o.thinking) sample.thinking = thinkingFor(plan.query, objects, answer);
    samples.push(sample);
  }
  return samples;
}
