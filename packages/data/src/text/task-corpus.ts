// The text the small task tokenizer is trained on: chat-rendered R1-V prompts with counting and
// geometry questions, their reasoning and answers. Built by enumeration, so it is identical every run.
import { ChatTemplate } from './chat-template.js';
import { buildPromptMessages, buildSftMessages, PROMPT_PRESETS, type PromptPresetName } from './prompts.js';

const COLORS = [
  'red',
  'blue',
  'green',
  'yellow',
  'purple',
  'cyan',
  'gray',
  'brown',
  'orange',
  'black',
  'white',
  'pink',
];
const SIZES = ['small', 'large', 'big', 'tiny'];
const MATERIALS = ['metal', 'rubber', 'shiny', 'matte'];
const SHAPES = [
  ['cube', 'cubes'],
  ['sphere', 'spheres'],
  ['cylinder', 'cylinders'],
  ['ball', 'balls'],
  ['block', 'blocks'],
  ['circle', 'circles'],
  ['square', 'squares'],
  ['triangle', 'triangles'],
  ['star', 'stars'],
  ['dot', 'dots'],
  ['object', 'objects'],
  ['item', 'items'],
  ['shape', 'shapes'],
];

function countingQuestions(): { problem: string; answer: number }[] {
  const out: { problem: string; answer: number }[] = [];
  let k = 0;
  const next = () => 1 + (k++ % 10);
  out.push({ problem: 'How many items are there in the image?', answer: next() });
  out.push({ problem: 'How many different items are there in the image?', answer: next() });
  out.push({ problem: 'How many objects are there in the picture?', answer: next() });
  out.push({ problem: 'Count the shapes in the image.', answer: next() });
  out.push({ problem: 'How many objects are there?', answer: next() });
  for (const color of COLORS) {
    for (const [one, many] of SHAPES) {
      out.push({ problem: `How many ${color} ${many} are there?`, answer: next() });
      out.push({ problem: `Subtract all ${color} ${many}. How many objects are left?`, answer: next() });
      out.push({
        problem: `Is there a ${color} ${one}? How many ${many} are there in total?`,
        answer: next(),
      });
    }
  }
  for (const size of SIZES) {
    for (const material of MATERIALS) {
      for (const [, many] of SHAPES.slice(0, 5)) {
        out.push({ problem: `How many ${size} ${material} ${many} are in the image?`, answer: next() });
        out.push({
          problem: `Subtract all ${size} ${many}. Subtract all ${material} ${many}. How many objects are left?`,
          answer: next(),
        });
      }
    }
  }
  return out;
}

function countingThinking(n: number): string {
  const list = Array.from({ length: n }, (_, i) => String(i + 1)).join(', ');
  return `<think> I count the objects in the image one by one: ${list}. There are ${n} objects in total. </think>`;
}

const POINTS = ['A', 'B', 'C', 'D', 'E', 'O', 'P'];

function geometryQuestions(): { problem: string; answer: string; thinking: string }[] {
  const out: { problem: string; answer: string; thinking: string }[] = [];
  for (let a = 10; a <= 80; a += 5) {
    out.push({
      problem: `In triangle ABC, angle A measures ${a} degrees, what is the measure of angle CBD?`,
      answer: `${90 - a}°`,
      thinking: `<think> The angle CBD = 90° - ${a}° = ${90 - a}°. </think>`,
    });
    out.push({
      problem: `As shown in the figure, AB is the diameter of circle O, point C is on circle O, ∠BAC = ${a}°, then the degree of ∠ABC is ()`,
      answer: `${90 - a}°`,
      thinking: `<think> Since AB is the diameter, ∠ACB = 90°. So ∠ABC = 90° - ${a}° = ${90 - a}°. </think>`,
    });
    out.push({
      problem: `As shown in the figure, AB ∥ CD, ∠1 = ${a}°, then the size of ∠2 is ()`,
      answer: `${180 - a}°`,
      thinking: `<think> Because AB is parallel to CD, ∠1 + ∠2 = 180°, so ∠2 = 180° - ${a}° = ${180 - a}°. </think>`,
    });
  }
  for (let l = 2; l <= 20; l++) {
    const p = POINTS[l % POINTS.length];
    const q = POINTS[(l + 2) % POINTS.length];
    out.push({
      problem: `In the figure, the length of ${p}${q} is ${l} cm and M is the midpoint of ${p}${q}. What is the length of ${p}M?`,
      answer: `${l / 2}cm`,
      thinking: `<think> M is the midpoint, so ${p}M = ${l} ÷ 2 = ${l / 2} cm. </think>`,
    });
    out.push({
      problem: `The radius of circle O is ${l} cm. What is the length of the chord AB if ∠AOB = 60°?`,
      answer: `${l}cm`,
      thinking: `<think> Triangle AOB is equilateral because OA = OB and ∠AOB = 60°, so AB = ${l} cm. </think>`,
    });
    out.push({
      problem: `In right triangle ABC, ∠C = 90°, AC = ${l} and BC = ${l + 1}. Find the area of triangle ABC.`,
      answer: `${(l * (l + 1)) / 2}`,
      thinking: `<think> The area is AC × BC ÷ 2 = ${l} × ${l + 1} ÷ 2 = ${(l * (l + 1)) / 2}. </think>`,
    });
    out.push({
      problem: `What is the perimeter of the rectangle with sides ${l} cm and ${l + 3} cm? Choices: A: ${2 * l} B: ${2 * (2 * l + 3)} C: ${l + 3} D: ${4 * l}`,
      answer: 'B',
      thinking: `<think> The perimeter is 2 × (${l} + ${l + 3}) = ${2 * (2 * l + 3)} cm, which is choice B. </think>`,
    });
  }
  // GeoQA-style phrasings: "As shown in the figure, ... what is the measure of ∠X?", circles as ⊙O.
  for (let a = 20; a <= 70; a += 10) {
    for (let b = 30; b <= 60; b += 15) {
      out.push({
        problem: `As shown in the figure, in triangle ABC, ∠A = ${a}° and ∠B = ${b}°. What is the measure of ∠C?`,
        answer: `${180 - a - b}°`,
        thinking: `<think> The angles of a triangle sum to 180°, so ∠C = 180° - ${a}° - ${b}° = ${180 - a - b}°. </think>`,
      });
      out.push({
        problem: `As shown in the figure, in triangle ABC, D is a point on the extension of BC. If ∠A = ${a}° and ∠B = ${b}°, what is the measure of ∠ACD?`,
        answer: `${a + b}°`,
        thinking: `<think> The exterior angle ∠ACD equals ∠A + ∠B = ${a}° + ${b}° = ${a + b}°. </think>`,
      });
    }
    out.push({
      problem: `As shown in the figure, A, B and C are points on ⊙O. If ∠AOB = ${2 * a}°, what is the measure of ∠ACB?`,
      answer: `${a}°`,
      thinking: `<think> The inscribed angle is half the central angle: ∠ACB = ${2 * a}° ÷ 2 = ${a}°. </think>`,
    });
    out.push({
      problem: `As shown in the figure, AB ∥ CD, and line EF intersects AB at G and CD at H. If ∠AGE = ${a}°, what is the measure of ∠CHG?`,
      answer: `${180 - a}°`,
      thinking: `<think> ∠AGE and ∠CHG are supplementary, so ∠CHG = 180° - ${a}° = ${180 - a}°. </think>`,
    });
    out.push({
      problem: `As shown in the figure, in triangle ABC, AB = AC and ∠A = ${a}°. What is the measure of ∠B?`,
      answer: `${(180 - a) / 2}°`,
      thinking: `<think> The base angles are equal: ∠B = (180° - ${a}°) ÷ 2 = ${(180 - a) / 2}°. </think>`,
    });
  }
  for (const [x, y, z] of [
    [3, 4, 5],
    [6, 8, 10],
    [5, 12, 13],
    [8, 15, 17],
  ]) {
    out.push({
      problem: `As shown in the figure, in right triangle ABC, ∠C = 90°, AC = ${x}cm and BC = ${y}cm. What is the length of AB?`,
      answer: `${z}cm`,
      thinking: `<think> By the Pythagorean theorem AB = √(${x}² + ${y}²) = ${z} cm. </think>`,
    });
    out.push({
      problem: `As shown in the figure, in triangle ABC, D and E are the midpoints of AB and AC. If BC = ${2 * z}cm, what is the length of DE?`,
      answer: `${z}cm`,
      thinking: `<think> DE is a midline, so DE = BC ÷ 2 = ${z} cm. </think>`,
    });
  }
  out.push({
    problem: 'The side of the square is 2, what is the length of the diagonal? (√2, π, ½)',
    answer: '2√2',
    thinking: '<think> By the Pythagorean theorem the diagonal is √(2² + 2²) = 2√2. </think>',
  });
  return out;
}

/** Chat-rendered prompts, SFT conversations and completions covering the R1-V counting and geometry tasks. */
export function taskCorpus(): string[] {
  const template = ChatTemplate.qwen2vl();
  const texts: string[] = [];
  const presets = Object.keys(PROMPT_PRESETS) as PromptPresetName[];
  const samples = [
    ...countingQuestions().map(({ problem, answer }) => ({
      problem,
      solution: `<answer> ${answer} </answer>`,
      thinking: countingThinking(answer),
    })),
    ...geometryQuestions().map(({ problem, answer, thinking }) => ({
      problem,
      solution: `<answer>${answer}</answer>`,
      thinking,
    })),
  ];
  samples.forEach((sample, i) => {
    const preset = presets[i % presets.length];
    texts.push(template.render(buildPromptMessages(preset, sample), { addGenerationPrompt: true }));
    texts.push(template.render(buildSftMessages('r1v-sft', sample)));
    // Completions as a policy writes them: with and without spaces inside the tags.
    texts.push(`${sample.thinking}\n${sample.solution}`);
    texts.push(
      `${sample.thinking} ${sample.solution.replace(/<answer> ?(.*?) ?<\/answer>/, '<answer>$1</answer>')}`,
    );
  });
  return texts;
}
