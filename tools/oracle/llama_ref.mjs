#!/usr/bin/env node
// llama.cpp as an oracle (through node-llama-cpp 3.x, prebuilt CPU binaries).
//
//   node tools/oracle/llama_ref.mjs MODE --model FILE.gguf [options]
//
// Modes (each prints ONE JSON object on stdout; diagnostics go to stderr):
//   info        model facts: n_vocab, bos/eos ids, add_bos, architecture.
//   logits      --tokens '[ids]' | --tokens-file F.json [--out F.f32]
//               logits of EVERY position. Full rows when n_vocab <= 4096 or
//               --full; otherwise only argmax + --top-k K (default 10) pairs.
//               --out writes the full rows to F.f32 instead (little-endian f32
//               [n_tokens, n_vocab]); the JSON then carries shape and argmax.
//   greedy      --tokens '[ids]' | --prompt TEXT | --prompts-file F.json
//               (JSON list of strings) [--n 32] [--bos auto|yes|no]
//               prompt ids + N greedy token ids (temperature 0, no penalties).
//   tokenize    --text TEXT | --texts-file F.json [--special] [--bos auto|yes|no]
//   perplexity  --text-file F | --tokens-file F.json [--ctx 512] [--chunks N]
//               llama-perplexity's method: the text is tokenized whole (BOS
//               first if the model adds one); chunk i is tokens[i*ctx, (i+1)*ctx)
//               with its first token replaced by BOS when the model adds one;
//               only positions j in [ctx/2, ctx-2] are scored (predicting j+1).
//
// Common options: --kv f32|f16 (KV cache type; default f32 for logits, f16
// like llama.cpp's default elsewhere), --threads N (default 1: on this
// shared 2-core machine 2 threads spin-wait and run many times slower),
// --flash-attn (default off). Needs NODE_LLAMA_CPP_SKIP_DOWNLOAD=true-style
// prebuilt binaries: getLlama({gpu: false, build: "never"}).
// node-llama-cpp is resolved from $KILN_NODE_MODULES, else
// <repo>/.deps/node/node_modules.

import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, "..", "..");

function die(msg) {
  process.stderr.write(`llama_ref: ${msg}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const mode = argv[0];
  const opts = {};
  const flags = new Set(["full", "special", "flash-attn"]);
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith("--")) die(`unexpected argument ${a}`);
    const key = a.slice(2);
    if (flags.has(key)) opts[key] = true;
    else {
      if (i + 1 >= argv.length) die(`missing value for ${a}`);
      opts[key] = argv[++i];
    }
  }
  return { mode, opts };
}

async function importNodeLlamaCpp() {
  const base = process.env.KILN_NODE_MODULES || path.join(repoRoot, ".deps", "node", "node_modules");
  const require = createRequire(path.join(base, "noop.js"));
  let entry;
  try {
    entry = require.resolve("node-llama-cpp");
  } catch {
    die(`node-llama-cpp not found under ${base} (run scripts/install_deps.sh)`);
  }
  return import(pathToFileURL(entry).href);
}

function readJson(file) {
  return JSON.parse(fs.readFileSync(file, "utf8"));
}

function tokensOpt(opts) {
  if (Array.isArray(opts.tokens)) return opts.tokens;
  if (opts.tokens) return JSON.parse(opts.tokens);
  if (opts["tokens-file"]) return readJson(opts["tokens-file"]);
  return null;
}

function checkIds(model, ids) {
  const n = vocabSize(model);
  const bad = ids.find((t) => !Number.isInteger(t) || t < 0 || t >= n);
  if (bad !== undefined) die(`token id ${bad} outside [0, ${n})`);
  return ids;
}

function withBos(model, ids, bosOpt) {
  const want = bosOpt === "yes" || ((bosOpt ?? "auto") === "auto" && model.tokens.shouldPrependBosToken);
  if (want && model.tokens.bos != null) return [model.tokens.bos, ...ids];
  return ids;
}

function vocabSize(model) {
  const t = model.fileInfo.tensorInfo?.find((x) => x.name === "token_embd.weight");
  if (t) return Number(t.dimensions[1]);
  return model.fileInfo.metadata?.tokenizer?.ggml?.tokens?.length ?? null;
}

const msSince = (t0) => Math.round(performance.now() - t0);

const openContexts = [];

async function makeSequence(model, opts, n, defaultKv) {
  const kv = (opts.kv ?? defaultKv).toUpperCase();
  const ctx = await model.createContext({
    contextSize: n,
    batchSize: Math.min(n, 512),
    sequences: 1,
    threads: Number(opts.threads ?? 1),
    flashAttention: !!opts["flash-attn"],
    experimentalKvCacheKeyType: kv,
    experimentalKvCacheValueType: kv,
  });
  openContexts.push(ctx);
  return { ctx, seq: ctx.getSequence() };
}

// Evaluates ids from an empty sequence; returns per-position outputs (also passed,
// as each arrives, to onTokenResult(index, output) when given).
async function evalAll(seq, ids, generateNext, onTokenResult) {
  await seq.clearHistory();
  const input = ids.map((t) => [t, { generateNext }]);
  return seq.controlledEvaluate(input, { onTokenResult });
}

async function modeLogits(model, opts) {
  const ids = checkIds(model, tokensOpt(opts) ?? die("logits needs --tokens or --tokens-file"));
  // One spare cell: with the context exactly full, node-llama-cpp shifts it (drops the
  // oldest tokens) before evaluating the last token, whose row then differs.
  const { seq } = await makeSequence(model, opts, Math.max(ids.length + 1, 8), "f32");
  if (opts.out) return logitsToFile(model, seq, ids, opts.out);
  const full = !!opts.full || vocabSize(model) <= 4096;
  const topK = Number(opts["top-k"] ?? 10);
  const out = await evalAll(seq, ids, full ? { logits: true }
    : { logits: { filter: { tokens: [], includeTop: topK } } });
  const res = { n_tokens: ids.length, n_vocab: vocabSize(model), token_ids: ids };
  if (full) {
    res.logits = out.map((o) => {
      const row = new Array(vocabSize(model)).fill(null);
      for (const [tok, v] of o.next.logits) row[tok] = v;
      return row;
    });
  } else {
    res.top = out.map((o) => [...o.next.logits.entries()].slice(0, topK));
  }
  res.argmax = out.map((o) => o.next.logits.entries().next().value[0]);
  return res;
}

// Full rows straight to a file, each written and dropped as it arrives (256 rows of a
// 262144-entry vocabulary kept as Maps would take gigabytes). node-llama-cpp returns
// every row sorted, as a Map: ~25 ms a row for 49152 entries, ~90 ms for 262144.
async function logitsToFile(model, seq, ids, file) {
  const nVocab = vocabSize(model);
  const argmax = new Array(ids.length).fill(null);
  const fd = fs.openSync(file, "w");
  try {
    await evalAll(seq, ids, { logits: true }, (i, o) => {
      const row = new Float32Array(nVocab).fill(NaN);  // x86: little-endian
      for (const [tok, v] of o.next.logits) row[tok] = v;
      argmax[i] = o.next.logits.keys().next().value;  // sorted, highest first
      fs.writeSync(fd, new Uint8Array(row.buffer), 0, row.byteLength, i * row.byteLength);
      delete o.next.logits;
    });
  } finally {
    fs.closeSync(fd);
  }
  if (argmax.includes(null)) die("logits: a position returned no logits");
  return { n_tokens: ids.length, n_vocab: nVocab, token_ids: ids, out: file, argmax };
}

async function greedyOne(model, seq, promptIds, n) {
  await seq.clearHistory();
  const generated = [];
  let input = promptIds.map((t, i) => (i === promptIds.length - 1 ? [t, { generateNext: { token: true } }] : t));
  for (let step = 0; step < n; step++) {
    const out = await seq.controlledEvaluate(input);
    const tok = out[input.length - 1]?.next?.token;
    if (tok == null) break;
    generated.push(tok);
    input = [[tok, { generateNext: { token: true } }]];
  }
  return generated;
}

async function modeGreedy(model, opts) {
  const n = Number(opts.n ?? 32);
  let prompts;
  if (Array.isArray(opts.prompts)) prompts = opts.prompts.map((p) => ({ text: p }));
  else if (opts["prompts-file"]) prompts = readJson(opts["prompts-file"]).map((p) => ({ text: p }));
  else if (opts.prompt !== undefined) prompts = [{ text: opts.prompt }];
  else prompts = [{ ids: checkIds(model, tokensOpt(opts) ?? die("greedy needs --tokens, --prompt or --prompts-file")) }];
  for (const p of prompts) {
    if (p.ids === undefined) p.ids = withBos(model, model.tokenize(p.text, !!opts.special), opts.bos);
  }
  const maxLen = Math.max(...prompts.map((p) => p.ids.length)) + n;
  const { seq } = await makeSequence(model, opts, maxLen, "f16");
  const results = [];
  for (const p of prompts) {
    const t0 = performance.now();
    const tokens = await greedyOne(model, seq, p.ids, n);
    results.push({ prompt: p.text ?? null, prompt_ids: p.ids, tokens,
      text: model.detokenize(tokens), ms: msSince(t0) });
  }
  return { n, results };
}

async function modeTokenize(model, opts) {
  let texts;
  if (Array.isArray(opts.texts)) texts = opts.texts;
  else if (opts["texts-file"]) texts = readJson(opts["texts-file"]);
  else if (opts.text !== undefined) texts = [opts.text];
  else die("tokenize needs --text or --texts-file");
  const ids = texts.map((t) => withBos(model, model.tokenize(t, !!opts.special), opts.bos));
  return { special: !!opts.special, bos: opts.bos ?? "auto", ids };
}

async function modePerplexity(model, opts) {
  const nCtx = Number(opts.ctx ?? 512);
  const t0 = performance.now();
  let tokens = tokensOpt(opts);
  if (tokens) checkIds(model, tokens);
  if (!tokens) {
    if (!opts["text-file"]) die("perplexity needs --text-file or --tokens-file");
    const text = fs.readFileSync(opts["text-file"], "utf8");
    tokens = withBos(model, model.tokenize(text, false), "auto");
  }
  const tokenizeMs = msSince(t0);
  const maxChunks = Math.floor(tokens.length / nCtx);
  if (maxChunks < 1) die(`need at least ${nCtx} tokens, have ${tokens.length}`);
  const nChunks = opts.chunks ? Math.min(Number(opts.chunks), maxChunks) : maxChunks;
  const addBos = model.tokens.shouldPrependBosToken && model.tokens.bos != null;
  const first = Math.floor(nCtx / 2);
  const { seq } = await makeSequence(model, opts, nCtx, "f16");
  const chunkNll = [];
  const chunkMs = [];
  let nllSum = 0;
  let count = 0;
  for (let c = 0; c < nChunks; c++) {
    const tc = performance.now();
    const chunk = tokens.slice(c * nCtx, (c + 1) * nCtx);
    if (addBos) chunk[0] = model.tokens.bos;
    const input = chunk.map((t, j) => (j >= first && j < nCtx - 1
      // Greedy sampling selects the argmax, so includeSelected returns the max
      // logit (node-llama-cpp's includeMax does not add a missing max token).
      ? [t, { generateNext: { logits: { filter: { tokens: [chunk[j + 1]], includeSelected: true } }, totalLogitWeight: true } }]
      : t));
    await seq.clearHistory();
    const out = await seq.controlledEvaluate(input);
    let nll = 0;
    for (let j = first; j < nCtx - 1; j++) {
      const o = out[j].next;
      const maxLogit = Math.max(...o.logits.values());
      const logit = o.logits.get(chunk[j + 1]);
      nll -= logit - maxLogit - Math.log(o.totalLogitWeight);
    }
    const n = nCtx - 1 - first;
    chunkNll.push(nll / n);
    nllSum += nll;
    count += n;
    chunkMs.push(msSince(tc));
  }
  return { n_ctx: nCtx, n_chunks: nChunks, n_tokens_total: tokens.length, add_bos: addBos,
    scored_per_chunk: nCtx - 1 - first, chunk_nll: chunkNll, mean_nll: nllSum / count,
    ppl: Math.exp(nllSum / count), tokenize_ms: tokenizeMs, chunk_ms: chunkMs };
}

async function modeInfo(model) {
  return {
    n_vocab: vocabSize(model),
    bos: model.tokens.bos, eos: model.tokens.eos,
    add_bos: model.tokens.shouldPrependBosToken,
    architecture: model.fileInfo?.metadata?.general?.architecture ?? null,
    train_context_size: model.trainContextSize,
  };
}

const MODES = { info: modeInfo, logits: modeLogits, greedy: modeGreedy, tokenize: modeTokenize,
  perplexity: modePerplexity };

// Runs one job on a loaded model; frees the contexts it made.
async function runJob(model, mode, opts) {
  const t0 = performance.now();
  try {
    const result = await MODES[mode](model, opts);
    result.timing_ms = { ...(result.timing_ms ?? {}), run: msSince(t0) };
    return result;
  } finally {
    while (openContexts.length) await openContexts.pop().dispose();
  }
}

// batch: --jobs FILE.json, a list of {mode, model, ...options}; options as on
// the command line (without "--"), arrays allowed for tokens/prompts/texts.
// One process, the llama.cpp backend loaded once, each model loaded once.
async function runBatch(llama, opts) {
  const jobs = readJson(opts.jobs ?? die("batch needs --jobs FILE.json"));
  const models = new Map();
  const results = [];
  for (const job of jobs) {
    if (!MODES[job.mode]) die(`batch: unknown mode ${job.mode}`);
    const file = path.resolve(job.model ?? die("batch: job without model"));
    if (!models.has(file)) models.set(file, await llama.loadModel({ modelPath: file, gpuLayers: 0 }));
    results.push(await runJob(models.get(file), job.mode, { threads: opts.threads, ...job }));
  }
  for (const m of models.values()) await m.dispose();
  return { results };
}

async function main() {
  const { mode, opts } = parseArgs(process.argv.slice(2));
  if (!MODES[mode] && mode !== "batch") {
    die(`usage: llama_ref.mjs {${Object.keys(MODES).join("|")}|batch} --model FILE [options]`);
  }
  if (mode !== "batch" && !opts.model) die("--model is required");
  process.env.NODE_LLAMA_CPP_SKIP_DOWNLOAD ??= "true";
  const t0 = performance.now();
  const { getLlama, LlamaLogLevel } = await importNodeLlamaCpp();
  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error,
    maxThreads: Number(opts.threads ?? 1) });
  let result;
  if (mode === "batch") {
    result = await runBatch(llama, opts);
    result.timing_ms = { total: msSince(t0) };
  } else {
    const model = await llama.loadModel({ modelPath: path.resolve(opts.model), gpuLayers: 0 });
    const loadMs = msSince(t0);
    result = await runJob(model, mode, opts);
    result.timing_ms.load = loadMs;
    await model.dispose();
  }
  process.stdout.write(JSON.stringify(result) + "\n");
  await llama.dispose();
}

main().catch((e) => die(e?.stack ?? String(e)));
