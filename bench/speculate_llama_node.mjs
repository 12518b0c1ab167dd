#!/usr/bin/env node
// llama.cpp's speculative decoding (npm node-llama-cpp, prebuilt CPU binaries): the peer of
// bench/speculate.py's single-stream table (#15).
//
//   node bench/speculate_llama_node.mjs --model MODEL.gguf [--draft DRAFT.gguf]
//        --mode off|lookup|draft --prompt-ids FILE.json -n N [--threads 2] [--context 4096]
//        [--draft-max K] [--draft-min K]
//
// One context, one sequence. The prompt ids (a JSON array, e.g. kiln run --json's
// "prompt_ids") are evaluated as they are (no BOS added, no template), then exactly N tokens are
// generated greedily (temperature 0, no penalties). End-of-generation tokens do not stop the
// run (yieldEogToken): the model's argmax after EOS is just the next token.
// Modes:
//   off     no token predictor;
//   lookup  InputLookupTokenPredictor (prompt lookup in the prompt ids only; node-llama-cpp's
//           defaults: pattern length >= 1, longest match wins, up to 3 predicted tokens, or
//           --draft-max). The prompt ids are handed to it with updateInputTokens(): raw
//           sequence.evaluate() never does so, and without it the predictor guesses nothing.
//   draft   DraftSequenceTokenPredictor over a sequence of --draft's own context (same threads
//           and context size; node-llama-cpp's defaults: up to 16 tokens, or --draft-max, cut
//           at the first draft token whose probability is under 0.6). The draft runs
//           asynchronously, on the same cores as the target; with minTokens 0 (the default)
//           the target never waits for it and verifies whatever is ready, often nothing on a
//           busy CPU. --draft-min K makes each step wait for K draft tokens (classic
//           draft-then-verify).
// Prints ONE JSON line: mode, n_generated, gen_tok_s ((n - 1) / seconds after the first token),
// prompt_ms (evaluate() call to the first generated token: prompt prefill, plus the draft
// model's own prefill in mode draft), output_ids, the sequence's tokenPredictions
// {validated, refuted, used, unused} (null in mode off), and the llama.cpp build.
// Nothing is downloaded (build: "never"); no network is used.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, "..");

function die(msg) {
  process.stderr.write(`speculate_llama_node: ${msg}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const o = { model: null, draft: null, mode: "off", promptIds: null, n: 32, threads: 2,
              context: 4096, draftMax: null, draftMin: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => (i + 1 < argv.length ? argv[++i] : die(`missing value for ${a}`));
    if (a === "-m" || a === "--model") o.model = val();
    else if (a === "--draft") o.draft = val();
    else if (a === "--mode") o.mode = val();
    else if (a === "--prompt-ids") o.promptIds = val();
    else if (a === "-n") o.n = Number(val());
    else if (a === "-t" || a === "--threads") o.threads = Number(val());
    else if (a === "--context") o.context = Number(val());
    else if (a === "--draft-max") o.draftMax = Number(val());
    else if (a === "--draft-min") o.draftMin = Number(val());
    else die(`unexpected argument ${a}`);
  }
  if (!o.model) die("needs --model MODEL");
  if (!o.promptIds) die("needs --prompt-ids FILE");
  if (!["off", "lookup", "draft"].includes(o.mode)) die(`--mode must be off, lookup or draft`);
  if (o.mode === "draft" && !o.draft) die("--mode draft needs --draft MODEL");
  if (!(o.n >= 1)) die("-n must be >= 1");
  return o;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const promptIds = JSON.parse(fs.readFileSync(o.promptIds, "utf8"));
  if (!Array.isArray(promptIds) || !promptIds.length || !promptIds.every(Number.isInteger))
    die(`${o.promptIds}: expected a non-empty JSON array of token ids`);
  if (promptIds.length + o.n > o.context) die(`prompt + n exceeds --context ${o.context}`);

  const base = process.env.KILN_NODE_MODULES || path.join(repoRoot, ".deps", "node", "node_modules");
  const require = createRequire(path.join(base, "noop.js"));
  const entry = require.resolve("node-llama-cpp");
  const pkg = JSON.parse(fs.readFileSync(path.join(path.dirname(entry), "..", "package.json"), "utf8"));
  const { getLlama, InputLookupTokenPredictor, DraftSequenceTokenPredictor } =
    await import(pathToFileURL(entry).href);
  const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" });
  const model = await llama.loadModel({ modelPath: o.model });

  let draftModel = null, draftContext = null, predictor;
  if (o.mode === "lookup") {
    predictor = new InputLookupTokenPredictor(
      o.draftMax ? { predictionLength: { max: o.draftMax } } : {});
    predictor.updateInputTokens(promptIds);
  } else if (o.mode === "draft") {
    draftModel = await llama.loadModel({ modelPath: o.draft });
    draftContext = await draftModel.createContext({ contextSize: o.context, threads: o.threads });
    const opts = {};
    if (o.draftMax) opts.maxTokens = o.draftMax;
    if (o.draftMin != null) opts.minTokens = o.draftMin;
    predictor = new DraftSequenceTokenPredictor(draftContext.getSequence(), opts);
  }
  const context = await model.createContext({ contextSize: o.context, threads: o.threads });
  const seq = context.getSequence(predictor ? { tokenPredictor: predictor } : {});

  const out = [];
  const t0 = performance.now();
  let t1 = null;
  for await (const tok of seq.evaluate(promptIds, { temperature: 0, yieldEogToken: true })) {
    if (t1 === null) t1 = performance.now();
    out.push(tok);
    if (out.length >= o.n) break;
  }
  const t2 = performance.now();
  const stats = predictor ? { ...seq.tokenPredictions } : null;
  const maps = fs.readFileSync("/proc/self/maps", "utf8");
  const cpu = maps.match(/libggml-cpu-([a-z0-9_]+)\.so/);
  console.log(JSON.stringify({
    engine: "llama-node", mode: o.mode, n_generated: out.length,
    gen_tok_s: out.length > 1 ? (out.length - 1) / ((t2 - t1) / 1000) : null,
    prompt_ms: t1 === null ? null : t1 - t0, prompt_tokens: promptIds.length,
    output_ids: out, token_predictions: stats, threads: o.threads,
    draft_min: o.mode === "draft" ? predictor.minTokens : null,
    draft_max: predictor ? (o.mode === "lookup" ? predictor.predictionMaxLength : predictor.maxTokens) : null,
    node_llama_cpp: pkg.version, cpu_variant: cpu ? cpu[1] : null,
  }));
  await seq.dispose();
  await context.dispose();
  if (draftContext) await draftContext.dispose();
  if (draftModel) await draftModel.dispose();
  await model.dispose();
}

main().catch((e) => die(e.stack || String(e)));
