// Synthetic geometry reasoning (paper-spec §4: GeoQA-style): diagrams drawn to scale with labelled
// points, the givens marked on the figure and stated in the question, and a numeric answer with a
// unit (`70°`, `5cm`) that follows from the givens by one theorem: the angle sum of a triangle, the
// exterior angle, isosceles base angles, angles at parallel lines, the inscribed angle, Thales,
// Pythagoras, and similar triangles / the midline.
import { createCanvas, type SKRSContext2D } from '@napi-rs/canvas';
import type { R1VSample } from '../schema.js';
import { DEFAULT_FONT_PATH, registerTaskFont } from './font.js';
import { TaskRng } from './random.js';

export const GEOMETRY_KINDS = [
  'triangle-angle-sum',
  'exterior-angle',
  'isosceles-triangle',
  'parallel-lines',
  'inscribed-angle',
  'thales',
  'pythagoras',
  'similar-triangles',
] as const;
export type GeometryKind = (typeof GEOMETRY_KINDS)[number];

/** Smallest image side a diagram is drawn at (labels and tick marks need the room). */
export const GEOMETRY_MIN_SIZE = 120;

/** A point in diagram units (y up; centimetres for the length tasks). */
export type GeometryPoint = [number, number];

/** `[P, V, Q]`: the angle at V between rays VP and VQ, in degrees (0..180). */
export type AngleRef = [string, string, string];
export type SegmentRef = [string, string];

export type GeometryMeasure = { type: 'angle'; points: AngleRef } | { type: 'length'; points: SegmentRef };
export type GeometryGiven = GeometryMeasure & { value: number };

/** Facts the question states besides the numeric givens; all hold in the drawn coordinates. */
export type GeometryFact =
  | { type: 'parallel'; lines: [SegmentRef, SegmentRef] }
  | { type: 'collinear'; points: string[] }
  | { type: 'on-circle'; points: string[]; center: string; radius: number }
  | { type: 'equal-length'; segments: [SegmentRef, SegmentRef] }
  | { type: 'midpoint'; point: string; of: SegmentRef };

export interface GeometryDiagram {
  points: Record<string, GeometryPoint>;
  segments: SegmentRef[];
  circles: { center: string; radius: number }[];
  givens: GeometryGiven[];
  asked: GeometryMeasure;
  facts: GeometryFact[];
  /** Segment groups drawn with equal tick marks. */
  equalTicks?: SegmentRef[];
}

export interface GeometryTaskOptions {
  n: number;
  seed: number;
  /** Image size (default 400x300). */
  width?: number;
  height?: number;
  /** Problem kinds to draw from (default all, uniformly). */
  kinds?: readonly GeometryKind[];
  /** Add a short `<think>...</think>` derivation (SFT targets). Default false. */
  thinking?: boolean;
  /** Font file for labels (default DejaVu Sans). */
  fontPath?: string;
}

export interface GeometrySample extends R1VSample {
  image: Uint8Array;
  task: 'geometry';
  /** The answer with its unit, e.g. `'70°'` or `'5cm'` (also in `solution`). */
  answer: string;
  kind: GeometryKind;
  diagram: GeometryDiagram;
}

interface Problem {
  diagram: GeometryDiagram;
  question: string;
  /** Answer value (an integer) and unit. */
  value: number;
  unit: '°' | 'cm';
  derivation: string;
}

const rad = (deg: number) => (deg * Math.PI) / 180;
const polar = (r: number, deg: number, [x, y]: GeometryPoint = [0, 0]): GeometryPoint => [
  x + r * Math.cos(rad(deg)),
  y + r * Math.sin(rad(deg)),
];
const lerp = ([ax, ay]: GeometryPoint, [bx, by]: GeometryPoint, t: number): GeometryPoint => [
  ax + (bx - ax) * t,
  ay + (by - ay) * t,
];
const angleName = ([p, v, q]: AngleRef) => `∠${p}${v}${q}`;
const deg = (v: number) => `${v}°`;
const cm = (v: number) => `${v}cm`;

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/** Apex of a triangle on base PQ (P left of Q) with base angles `atP`, `atQ` (law of sines). */
function apex(P: GeometryPoint, Q: GeometryPoint, atP: number, atQ: number): GeometryPoint {
  const base = Math.hypot(Q[0] - P[0], Q[1] - P[1]);
  const side = (base * Math.sin(rad(atQ))) / Math.sin(rad(atP + atQ));
  const dir = (Math.atan2(Q[1] - P[1], Q[0] - P[0]) * 180) / Math.PI;
  return polar(side, dir + atP, P);
}

function triangleAngleSum(rng: TaskRng): Problem {
  let a: number;
  let b: number;
  do {
    a = rng.int(25, 110);
    b = rng.int(25, 110);
  } while (180 - a - b < 25);
  const c = 180 - a - b;
  const A: GeometryPoint = [0, 0];
  const B: GeometryPoint = [10, 0];
  const C = apex(A, B, a, b);
  return {
    diagram: {
      points: { A, B, C },
      segments: [
        ['A', 'B'],
        ['B', 'C'],
        ['C', 'A'],
      ],
      circles: [],
      givens: [
        { type: 'angle', points: ['B', 'A', 'C'], value: a },
        { type: 'angle', points: ['A', 'B', 'C'], value: b },
      ],
      asked: { type: 'angle', points: ['A', 'C', 'B'] },
      facts: [],
    },
    question: `As shown in the figure, in triangle ABC, ∠A = ${deg(a)} and ∠B = ${deg(b)}. What is the measure of ∠C?`,
    value: c,
    unit: '°',
    derivation: `The interior angles of a triangle add up to 180°, so ∠C = 180° - ${deg(a)} - ${deg(b)} = ${deg(c)}.`,
  };
}

function exteriorAngle(rng: TaskRng): Problem {
  let a: number;
  let b: number;
  do {
    a = rng.int(25, 100);
    b = rng.int(25, 100);
  } while (180 - a - b < 25);
  const c = 180 - a - b;
  const B: GeometryPoint = [0, 0];
  const C: GeometryPoint = [10, 0];
  const D: GeometryPoint = [14.5, 0];
  const A = apex(B, C, b, c);
  return {
    diagram: {
      points: { A, B, C, D },
      segments: [
        ['A', 'B'],
        ['B', 'D'],
        ['C', 'A'],
      ],
      circles: [],
      givens: [
        { type: 'angle', points: ['B', 'A', 'C'], value: a },
        { type: 'angle', points: ['A', 'B', 'C'], value: b },
      ],
      asked: { type: 'angle', points: ['A', 'C', 'D'] },
      facts: [{ type: 'collinear', points: ['B', 'C', 'D'] }],
    },
    question: `As shown in the figure, in triangle ABC, D is a point on the extension of BC. If ∠A = ${deg(a)} and ∠B = ${deg(b)}, what is the measure of ∠ACD?`,
    value: a + b,
    unit: '°',
    derivation: `An exterior angle of a triangle equals the sum of the two remote interior angles, so ∠ACD = ∠A + ∠B = ${deg(a)} + ${deg(b)} = ${deg(a + b)}.`,
  };
}

function isoscelesTriangle(rng: TaskRng): Problem {
  const apexAngle = 2 * rng.int(15, 70); // even, so the base angles are integers
  const baseAngle = (180 - apexAngle) / 2;
  const B: GeometryPoint = [0, 0];
  const C: GeometryPoint = [10, 0];
  const A = apex(B, C, baseAngle, baseAngle);
  const askBase = rng.chance(0.5);
  const facts: GeometryFact[] = [
    {
      type: 'equal-length',
      segments: [
        ['A', 'B'],
        ['A', 'C'],
      ],
    },
  ];
  const common = {
    points: { A, B, C },
    segments: [
      ['A', 'B'],
      ['B', 'C'],
      ['C', 'A'],
    ] as SegmentRef[],
    circles: [],
    facts,
    equalTicks: [
      ['A', 'B'],
      ['A', 'C'],
    ] as SegmentRef[],
  };
  if (askBase) {
    return {
      diagram: {
        ...common,
        givens: [{ type: 'angle', points: ['B', 'A', 'C'], value: apexAngle }],
        asked: { type: 'angle', points: ['A', 'B', 'C'] },
      },
      question: `As shown in the figure, in triangle ABC, AB = AC and ∠A = ${deg(apexAngle)}. What is the measure of ∠B?`,
      value: baseAngle,
      unit: '°',
      derivation: `Since AB = AC, the base angles are equal, so ∠B = ∠C = (180° - ${deg(apexAngle)}) / 2 = ${deg(baseAngle)}.`,
    };
  }
  return {
    diagram: {
      ...common,
      givens: [{ type: 'angle', points: ['A', 'B', 'C'], value: baseAngle }],
      asked: { type: 'angle', points: ['B', 'A', 'C'] },
    },
    question: `As shown in the figure, in triangle ABC, AB = AC and ∠B = ${deg(baseAngle)}. What is the measure of ∠A?`,
    value: apexAngle,
    unit: '°',
    derivation: `Since AB = AC, ∠C = ∠B = ${deg(baseAngle)}, so ∠A = 180° - 2 × ${deg(baseAngle)} = ${deg(apexAngle)}.`,
  };
}

function parallelLines(rng: TaskRng): Problem {
  let theta: number;
  do theta = rng.int(35, 145);
  while (Math.abs(theta - 90) < 12);
  const h = 4;
  const A: GeometryPoint = [0, h];
  const B: GeometryPoint = [10, h];
  const C: GeometryPoint = [0, 0];
  const D: GeometryPoint = [10, 0];
  const dx = h / Math.tan(rad(theta));
  const hx = rng.uniform(Math.max(1.5, 1.5 - dx), Math.min(8.5, 8.5 - dx));
  const H: GeometryPoint = [hx, 0];
  const G: GeometryPoint = [hx + dx, h];
  const E = polar(1.8, theta, G);
  const F = polar(1.8, theta + 180, H);
  const variant = rng.pick(['corresponding', 'alternate', 'co-interior', 'linear-pair'] as const);
  const asks: Record<
    typeof variant,
    { given: AngleRef; givenValue: number; asked: AngleRef; value: number; why: string }
  > = {
    corresponding: {
      given: ['E', 'G', 'B'],
      givenValue: theta,
      asked: ['G', 'H', 'D'],
      value: theta,
      why: `Since AB ∥ CD, the corresponding angles ∠GHD and ∠EGB are equal, so ∠GHD = ${deg(theta)}.`,
    },
    alternate: {
      given: ['A', 'G', 'H'],
      givenValue: theta,
      asked: ['G', 'H', 'D'],
      value: theta,
      why: `Since AB ∥ CD, the alternate interior angles ∠GHD and ∠AGH are equal, so ∠GHD = ${deg(theta)}.`,
    },
    'co-interior': {
      given: ['B', 'G', 'H'],
      givenValue: 180 - theta,
      asked: ['G', 'H', 'D'],
      value: theta,
      why: `Since AB ∥ CD, the co-interior angles ∠BGH and ∠GHD add up to 180°, so ∠GHD = 180° - ${deg(180 - theta)} = ${deg(theta)}.`,
    },
    'linear-pair': {
      given: ['E', 'G', 'B'],
      givenValue: theta,
      asked: ['C', 'H', 'G'],
      value: 180 - theta,
      why: `Since AB ∥ CD, ∠GHD = ∠EGB = ${deg(theta)} (corresponding angles), so ∠CHG = 180° - ${deg(theta)} = ${deg(180 - theta)}.`,
    },
  };
  const q = asks[variant];
  return {
    diagram: {
      points: { A, B, C, D, E, F, G, H },
      segments: [
        ['A', 'B'],
        ['C', 'D'],
        ['E', 'F'],
      ],
      circles: [],
      givens: [{ type: 'angle', points: q.given, value: q.givenValue }],
      asked: { type: 'angle', points: q.asked },
      facts: [
        {
          type: 'parallel',
          lines: [
            ['A', 'B'],
            ['C', 'D'],
          ],
        },
        { type: 'collinear', points: ['E', 'G', 'H', 'F'] },
        { type: 'collinear', points: ['A', 'G', 'B'] },
        { type: 'collinear', points: ['C', 'H', 'D'] },
      ],
    },
    question: `As shown in the figure, AB ∥ CD, and line EF intersects AB at G and CD at H. If ${angleName(q.given)} = ${deg(q.givenValue)}, what is the measure of ${angleName(q.asked)}?`,
    value: q.value,
    unit: '°',
    derivation: q.why,
  };
}

function inscribedAngle(rng: TaskRng): Problem {
  const k = rng.int(25, 80);
  const r = 5;
  const O: GeometryPoint = [0, 0];
  const A = polar(r, -90 - k);
  const B = polar(r, -90 + k);
  // C on the major arc, away from A and B.
  const C = polar(r, rng.uniform(-90 + k + 45, 270 - k - 45));
  const fromCentral = rng.chance(0.5);
  const central: AngleRef = ['A', 'O', 'B'];
  const inscribed: AngleRef = ['A', 'C', 'B'];
  return {
    diagram: {
      points: { A, B, C, O },
      segments: [
        ['O', 'A'],
        ['O', 'B'],
        ['C', 'A'],
        ['C', 'B'],
      ],
      circles: [{ center: 'O', radius: r }],
      givens: [{ type: 'angle', points: fromCentral ? central : inscribed, value: fromCentral ? 2 * k : k }],
      asked: { type: 'angle', points: fromCentral ? inscribed : central },
      facts: [{ type: 'on-circle', points: ['A', 'B', 'C'], center: 'O', radius: r }],
    },
    question: fromCentral
      ? `As shown in the figure, A, B and C are points on ⊙O. If ∠AOB = ${deg(2 * k)}, what is the measure of ∠ACB?`
      : `As shown in the figure, A, B and C are points on ⊙O. If ∠ACB = ${deg(k)}, what is the measure of ∠AOB?`,
    value: fromCentral ? k : 2 * k,
    unit: '°',
    derivation: fromCentral
      ? `The inscribed angle ∠ACB and the central angle ∠AOB stand on the same arc AB, so ∠ACB = ∠AOB / 2 = ${deg(2 * k)} / 2 = ${deg(k)}.`
      : `The central angle ∠AOB stands on the same arc AB as the inscribed angle ∠ACB, so ∠AOB = 2 × ∠ACB = 2 × ${deg(k)} = ${deg(2 * k)}.`,
  };
}

function thales(rng: TaskRng): Problem {
  const a = rng.int(15, 75);
  const r = 5;
  const O: GeometryPoint = [0, 0];
  const A: GeometryPoint = [-r, 0];
  const B: GeometryPoint = [r, 0];
  // ∠BAC = a is inscribed on arc BC, so the central angle ∠BOC is 2a.
  const C = polar(r, 2 * a);
  return {
    diagram: {
      points: { A, B, C, O },
      segments: [
        ['A', 'B'],
        ['A', 'C'],
        ['B', 'C'],
      ],
      circles: [{ center: 'O', radius: r }],
      givens: [{ type: 'angle', points: ['B', 'A', 'C'], value: a }],
      asked: { type: 'angle', points: ['A', 'B', 'C'] },
      facts: [
        { type: 'on-circle', points: ['A', 'B', 'C'], center: 'O', radius: r },
        { type: 'midpoint', point: 'O', of: ['A', 'B'] },
      ],
    },
    question: `As shown in the figure, AB is the diameter of ⊙O and C is a point on ⊙O. If ∠BAC = ${deg(a)}, what is the measure of ∠ABC?`,
    value: 90 - a,
    unit: '°',
    derivation: `An angle inscribed in a semicircle is a right angle, so ∠ACB = 90° and ∠ABC = 90° - ∠BAC = 90° - ${deg(a)} = ${deg(90 - a)}.`,
  };
}

const TRIPLES: [number, number, number][] = [
  [3, 4, 5],
  [6, 8, 10],
  [5, 12, 13],
  [8, 15, 17],
  [9, 12, 15],
  [12, 16, 20],
  [7, 24, 25],
  [15, 20, 25],
  [20, 21, 29],
];

function pythagoras(rng: TaskRng): Problem {
  const [p, q, hyp] = rng.pick(TRIPLES);
  const [ac, bc] = rng.chance(0.5) ? [p, q] : [q, p];
  const C: GeometryPoint = [0, 0];
  const A: GeometryPoint = [0, ac];
  const B: GeometryPoint = [bc, 0];
  const right: GeometryGiven = { type: 'angle', points: ['A', 'C', 'B'], value: 90 };
  const base = {
    points: { A, B, C },
    segments: [
      ['A', 'B'],
      ['B', 'C'],
      ['C', 'A'],
    ] as SegmentRef[],
    circles: [],
    facts: [],
  };
  const askHyp = rng.chance(0.5);
  if (askHyp) {
    return {
      diagram: {
        ...base,
        givens: [
          right,
          { type: 'length', points: ['A', 'C'], value: ac },
          { type: 'length', points: ['B', 'C'], value: bc },
        ],
        asked: { type: 'length', points: ['A', 'B'] },
      },
      question: `As shown in the figure, in right triangle ABC, ∠C = 90°, AC = ${cm(ac)} and BC = ${cm(bc)}. What is the length of AB?`,
      value: hyp,
      unit: 'cm',
      derivation: `By the Pythagorean theorem, AB = √(AC² + BC²) = √(${ac}² + ${bc}²) = √${hyp * hyp} = ${cm(hyp)}.`,
    };
  }
  return {
    diagram: {
      ...base,
      givens: [
        right,
        { type: 'length', points: ['A', 'B'], value: hyp },
        { type: 'length', points: ['A', 'C'], value: ac },
      ],
      asked: { type: 'length', points: ['B', 'C'] },
    },
    question: `As shown in the figure, in right triangle ABC, ∠C = 90°, AB = ${cm(hyp)} and AC = ${cm(ac)}. What is the length of BC?`,
    value: bc,
    unit: 'cm',
    derivation: `By the Pythagorean theorem, BC = √(AB² - AC²) = √(${hyp}² - ${ac}²) = √${bc * bc} = ${cm(bc)}.`,
  };
}

function similarTriangles(rng: TaskRng): Problem {
  const midline = rng.chance(0.3);
  const p = rng.int(1, 6);
  const q = midline ? p : rng.int(1, 6);
  const g = gcd(p, q);
  // DE = (p/g) t and BC = ((p+q)/g) t are integers; t/g = BC/AB keeps the triangle well shaped.
  const t = rng.int(Math.ceil(0.6 * g), Math.floor(2 * g));
  const de = (p / g) * t;
  const bc = ((p + q) / g) * t;
  const beta = rng.int(45, 75);
  const B: GeometryPoint = [0, 0];
  const C: GeometryPoint = [bc, 0];
  const A = polar(p + q, beta, B);
  const D = lerp(A, B, p / (p + q));
  const E = lerp(A, C, p / (p + q));
  const segments: SegmentRef[] = [
    ['A', 'B'],
    ['B', 'C'],
    ['C', 'A'],
    ['D', 'E'],
  ];
  const parallel: GeometryFact = {
    type: 'parallel',
    lines: [
      ['D', 'E'],
      ['B', 'C'],
    ],
  };
  const onSides: GeometryFact[] = [
    { type: 'collinear', points: ['A', 'D', 'B'] },
    { type: 'collinear', points: ['A', 'E', 'C'] },
  ];
  if (midline) {
    return {
      diagram: {
        points: { A, B, C, D, E },
        segments,
        circles: [],
        givens: [{ type: 'length', points: ['B', 'C'], value: bc }],
        asked: { type: 'length', points: ['D', 'E'] },
        facts: [
          { type: 'midpoint', point: 'D', of: ['A', 'B'] },
          { type: 'midpoint', point: 'E', of: ['A', 'C'] },
        ],
      },
      question: `As shown in the figure, in triangle ABC, D and E are the midpoints of AB and AC. If BC = ${cm(bc)}, what is the length of DE?`,
      value: de,
      unit: 'cm',
      derivation: `DE joins the midpoints of two sides, so it is the midline of triangle ABC and DE = BC / 2 = ${cm(bc)} / 2 = ${cm(de)}.`,
    };
  }
  return {
    diagram: {
      points: { A, B, C, D, E },
      segments,
      circles: [],
      givens: [
        { type: 'length', points: ['A', 'D'], value: p },
        { type: 'length', points: ['D', 'B'], value: q },
        { type: 'length', points: ['D', 'E'], value: de },
      ],
      asked: { type: 'length', points: ['B', 'C'] },
      facts: [parallel, ...onSides],
    },
    question: `As shown in the figure, in triangle ABC, D is on AB and E is on AC with DE ∥ BC. If AD = ${cm(p)}, DB = ${cm(q)} and DE = ${cm(de)}, what is the length of BC?`,
    value: bc,
    unit: 'cm',
    derivation: `Since DE ∥ BC, triangle ADE is similar to triangle ABC, so BC / DE = AB / AD = ${p + q} / ${p}; hence BC = ${de} × ${p + q} / ${p} = ${cm(bc)}.`,
  };
}

const BUILDERS: Record<GeometryKind, (rng: TaskRng) => Problem> = {
  'triangle-angle-sum': triangleAngleSum,
  'exterior-angle': exteriorAngle,
  'isosceles-triangle': isoscelesTriangle,
  'parallel-lines': parallelLines,
  'inscribed-angle': inscribedAngle,
  thales,
  pythagoras,
  'similar-triangles': similarTriangles,
};

// ---------------------------------------------------------------------------------------------------
// Drawing

interface View {
  toScreen(p: GeometryPoint): GeometryPoint;
}

function fitView(d: GeometryDiagram, width: number, height: number, margin: number): View {
  const xs: number[] = [];
  const ys: number[] = [];
  for (const [x, y] of Object.values(d.points)) {
    xs.push(x);
    ys.push(y);
  }
  for (const c of d.circles) {
    const [cx, cy] = d.points[c.center];
    xs.push(cx - c.radius, cx + c.radius);
    ys.push(cy - c.radius, cy + c.radius);
  }
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const s = Math.min(
    (width - 2 * margin) / Math.max(x1 - x0, 1e-9),
    (height - 2 * margin) / Math.max(y1 - y0, 1e-9),
  );
  const ox = (width - s * (x1 - x0)) / 2;
  const oy = (height - s * (y1 - y0)) / 2;
  return { toScreen: ([x, y]) => [ox + (x - x0) * s, height - (oy + (y - y0) * s)] };
}

function unit([x, y]: GeometryPoint): GeometryPoint {
  const n = Math.hypot(x, y) || 1;
  return [x / n, y / n];
}

function drawAngle(
  ctx: SKRSContext2D,
  v: GeometryPoint,
  p: GeometryPoint,
  q: GeometryPoint,
  label: string,
  font: string,
): void {
  const a1 = Math.atan2(p[1] - v[1], p[0] - v[0]);
  const a2 = Math.atan2(q[1] - v[1], q[0] - v[0]);
  let delta = a2 - a1;
  while (delta <= -Math.PI) delta += 2 * Math.PI;
  while (delta > Math.PI) delta -= 2 * Math.PI;
  const span = Math.min(Math.hypot(p[0] - v[0], p[1] - v[1]), Math.hypot(q[0] - v[0], q[1] - v[1]));
  const r = Math.min(18, 0.35 * span);
  const mid = a1 + delta / 2;
  ctx.strokeStyle = label === '?' ? '#c0392b' : '#1f4e9c';
  ctx.lineWidth = 1.5;
  if (label === '90°') {
    // Right-angle marker.
    const s = Math.min(10, 0.3 * span);
    const u1: GeometryPoint = [Math.cos(a1) * s, Math.sin(a1) * s];
    const u2: GeometryPoint = [Math.cos(a2) * s, Math.sin(a2) * s];
    ctx.beginPath();
    ctx.moveTo(v[0] + u1[0], v[1] + u1[1]);
    ctx.lineTo(v[0] + u1[0] + u2[0], v[1] + u1[1] + u2[1]);
    ctx.lineTo(v[0] + u2[0], v[1] + u2[1]);
    ctx.stroke();
    return;
  }
  ctx.beginPath();
  ctx.arc(v[0], v[1], r, a1, a1 + delta, delta < 0);
  ctx.stroke();
  ctx.fillStyle = ctx.strokeStyle;
  ctx.font = `13px ${font}`;
  const t = r + 14;
  ctx.fillText(label, v[0] + Math.cos(mid) * t, v[1] + Math.sin(mid) * t);
}

/** The PNG of a diagram: white page, black figure, blue givens, a red `?` on the asked quantity. */
export function renderGeometryDiagram(
  d: GeometryDiagram,
  width: number,
  height: number,
  fontPath = DEFAULT_FONT_PATH,
): Uint8Array {
  const font = registerTaskFont(fontPath);
  const canvas = createCanvas(width, height);
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(0, 0, width, height);
  const view = fitView(d, width, height, 34);
  const S: Record<string, GeometryPoint> = Object.fromEntries(
    Object.entries(d.points).map(([k, p]) => [k, view.toScreen(p)]),
  );
  const centroid: GeometryPoint = [0, 0];
  for (const p of Object.values(S)) {
    centroid[0] += p[0] / Object.keys(S).length;
    centroid[1] += p[1] / Object.keys(S).length;
  }
  ctx.strokeStyle = '#000000';
  ctx.lineWidth = 2;
  ctx.lineCap = 'round';
  for (const c of d.circles) {
    const [cx, cy] = S[c.center];
    const r = Math.hypot(view.toScreen([d.points[c.center][0] + c.radius, d.points[c.center][1]])[0] - cx, 0);
    ctx.beginPath();
    ctx.arc(cx, cy, r, 0, 2 * Math.PI);
    ctx.stroke();
  }
  for (const [p, q] of d.segments) {
    ctx.beginPath();
    ctx.moveTo(S[p][0], S[p][1]);
    ctx.lineTo(S[q][0], S[q][1]);
    ctx.stroke();
  }
  for (const [p, q] of d.equalTicks ?? []) {
    const m = lerp(S[p], S[q], 0.5);
    const [ux, uy] = unit([S[q][0] - S[p][0], S[q][1] - S[p][1]]);
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    ctx.moveTo(m[0] - uy * 6, m[1] + ux * 6);
    ctx.lineTo(m[0] + uy * 6, m[1] - ux * 6);
    ctx.stroke();
  }
  ctx.textAlign = 'center';
  ctx.textBaseline = 'middle';
  const measures: [GeometryMeasure, string][] = [
    ...d.givens.map((g): [GeometryMeasure, string] => [g, g.type === 'angle' ? deg(g.value) : cm(g.value)]),
    [d.asked, '?'],
  ];
  for (const [m, label] of measures) {
    if (m.type === 'angle') {
      const [p, v, q] = m.points;
      drawAngle(ctx, S[v], S[p], S[q], label, font);
    } else {
      const [p, q] = m.points;
      const mid = lerp(S[p], S[q], 0.5);
      const [ux, uy] = unit([S[q][0] - S[p][0], S[q][1] - S[p][1]]);
      // Put the length on the side of the segment away from the figure's centre.
      let n: GeometryPoint = [-uy, ux];
      if ((centroid[0] - mid[0]) * n[0] + (centroid[1] - mid[1]) * n[1] > 0) n = [uy, -ux];
      ctx.fillStyle = label === '?' ? '#c0392b' : '#1f4e9c';
      ctx.font = `13px ${font}`;
      ctx.fillText(label, mid[0] + n[0] * 14, mid[1] + n[1] * 14);
    }
  }
  ctx.fillStyle = '#000000';
  ctx.font = `bold 15px ${font}`;
  for (const [name, p] of Object.entries(S)) {
    ctx.beginPath();
    ctx.arc(p[0], p[1], 2.2, 0, 2 * Math.PI);
    ctx.fill();
    let dir = unit([p[0] - centroid[0], p[1] - centroid[1]]);
    if (Math.hypot(p[0] - centroid[0], p[1] - centroid[1]) < 4) dir = [-0.7, 0.7];
    ctx.fillText(name, p[0] + dir[0] * 13, p[1] + dir[1] * 13);
  }
  const png = canvas.encodeSync('png');
  return new Uint8Array(png.buffer, png.byteOffset, png.byteLength);
}

/** `n` GeoQA-style samples in the R1-V schema (`<answer> 70° </answer>`), reproducible from `seed`. */
export function generateGeometryTask(options: GeometryTaskOptions): GeometrySample[] {
  const {
    n,
    seed,
    width = 400,
    height = 300,
    kinds = GEOMETRY_KINDS,
    thinking = false,
    fontPath = DEFAULT_FONT_PATH,
  } = options;
  if (!Number.isInteger(n) || n < 0)
    throw new Error(`generateGeometryTask: n must be a non-negative integer, got ${n}`);
  if (
    !Number.isInteger(width) ||
    !Number.isInteger(height) ||
    width < GEOMETRY_MIN_SIZE ||
    height < GEOMETRY_MIN_SIZE
  ) {
    throw new Error(
      `generateGeometryTask: image size ${width}x${height} must be integers >= ${GEOMETRY_MIN_SIZE}`,
    );
  }
  const unknown = kinds.filter((k) => !(GEOMETRY_KINDS as readonly string[]).includes(k));
  if (kinds.length === 0 || unknown.length > 0) {
    throw new Error(
      `generateGeometryTask: unknown kinds ${unknown.join(', ') || '(none given)'}; kinds: ${GEOMETRY_KINDS.join(', ')}`,
    );
  }
  registerTaskFont(fontPath);
  const samples: GeometrySample[] = [];
  for (let i = 0; i < n; i++) {
    const rng = new TaskRng(seed, i, 2);
    const kind = rng.pick(kinds);
    const problem = BUILDERS[kind](rng);
    const answer = `${problem.value}${problem.unit}`;
    const sample: GeometrySample = {
      image: renderGeometryDiagram(problem.diagram, width, height, fontPath),
      problem: problem.question,
      solution: `<answer> ${answer} </answer>`,
      task: 'geometry',
      answer,
      kind,
      diagram: problem.diagram,
    };
    if (thinking) sample.thinking = `<think>${problem.derivation}</think>`;
    samples.push(sample);
  }
  return samples;
}
