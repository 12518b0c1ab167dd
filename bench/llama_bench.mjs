#!/usr/bin/env node
// llama.cpp's side of bench/compare_llama.py: the same work as `kiln bench`, timed the same way.
//
//   node bench/llama_bench.mjs -m MODEL.gguf [-p 512] [-n 128] [-t THREADS] [--flash-attn]
//
// Prints ONE JSON line: pp_tok_s, tg_tok_s, plus the llama.cpp build that ran (node-llama-cpp
// version, llama.cpp release, the libggml-cpu-<variant>.so it picked for this CPU, system info).
//
// What is timed (mirrors src/engine/evaluate.cc Bench):
//   warm-up   one token at position 0 (page faults of the mmapped weights), then the KV is cleared;
//   pp        ONE llama_decode of n_prompt tokens (ids (i*7919+13) % n_vocab), logits of the
//             last token only;
//   tg        n_gen llama_decode calls of one token each (ids (i*104729+7) % n_vocab) at
//             positions n_prompt .. n_prompt+n_gen-1, each computing its logits (no sampling).
// It drives node-llama-cpp's native context directly (initBatch / addToBatch / decodeBatch =
// llama_batch_init / common_batch_add / llama_decode on a worker thread): no sampler, no logits
// copied into JavaScript. The remaining per-step overhead is one async hop (~tens of µs).
// KV cache f16 (llama.cpp's default, kiln's default); flash attention off unless --flash-attn.
// node-llama-cpp is resolved from $KILN_NODE_MODULES, else <repo>/.deps/node/node_modules.

import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, "..");

function die(msg) {
  process.stderr.write(`llama_bench: ${msg}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const o = { model: null, p: 512, n: 128, t: 1, fa: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => (i + 1 < argv.length ? argv[++i] : die(`missing value for ${a}`));
    if (a === "-m" || a === "--model") o.model = val();
    else if (a === "-p" || a === "--n-prompt") o.p = Number(val());
    else if (a === "-n" || a === "--n-gen") o.n = Number(val());
    else if (a === "-t" || a === "--threads") o.t = Number(val());
    else if (a === "--flash-attn") o.fa = true;
    else die(`unexpected argument ${a}`);
  }
  if (!o.model) die("needs -m MODEL");
  if (!(o.p >= 1) || !(o.n >= 0) || !(o.t >= 1)) die("bad -p/-n/-t");
  return o;
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
  const pkg = JSON.parse(fs.readFileSync(path.join(path.dirname(entry), "..", "package.json"), "utf8"));
  return { mod: await import(pathToFileURL(entry).href), version: pkg.version, base };
}

// Which ggml CPU backend variant and addon build this process actually loaded.
function loadedBuild() {
  const maps = fs.readFileSync("/proc/self/maps", "utf8");
  const libs = [...new Set(maps.split("\n").map((l) => l.split(/\s+/)[5]).filter((p) => p && /libggml|libllama|llama-addon/.test(p)))];
  const cpu = libs.map((p) => path.basename(p).match(/^libggml-cpu-(.+)\.so$/)).find((m) => m);
  let meta = null;
  const dir = libs.length ? path.dirname(libs[0]) : null;
  if (dir && fs.existsSync(path.join(dir, "_nlcBuildMetadata.json"))) {
    meta = JSON.parse(fs.readFileSync(path.join(dir, "_nlcBuildMetadata.json"), "utf8"));
  }
  return { cpu_variant: cpu ? cpu[1] : null, bins_dir: dir, llama_cpp_release: meta?.buildOptions?.llamaCpp?.release ?? null };
}

function vocabSize(model) {
  const t = model.fileInfo.tensorInfo?.find((x) => x.name === "token_embd.weight");
  if (t) return Number(t.dimensions[1]);
  return model.fileInfo.metadata?.tokenizer?.ggml?.tokens?.length ?? die("cannot find n_vocab");
}

async function decode(native, pos, ids, wantLastLogits) {
  native.initBatch(ids.length);
  native.addToBatch(0, pos, Uint32Array.from(ids), wantLastLogits ? Uint32Array.of(ids.length - 1) : new Uint32Array(0));
  await native.decodeBatch();
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const { mod, version } = await importNodeLlamaCpp();
  const llama = await mod.getLlama({ gpu: false, build: "never", logLevel: "error" });
  const t_load0 = performance.now();
  const model = await llama.loadModel({ modelPath: o.model, gpuLayers: 0 });
  const ctx = await model.createContext({
    contextSize: o.p + o.n + 8,
    batchSize: o.p,
    sequences: 1,
    threads: o.t,
    flashAttention: o.fa,
    experimentalKvCacheKeyType: "F16",
    experimentalKvCacheValueType: "F16",
  });
  const load_s = (performance.now() - t_load0) / 1000;
  ctx.getSequence();  // claims sequence 0
  const native = ctx._ctx;
  const nVocab = vocabSize(model);
  const ids = Array.from({ length: o.p }, (_, i) => (i * 7919 + 13) % nVocab);

  await decode(native, 0, [ids[0]], true);  // warm-up
  native.disposeSequence(0);                // llama_memory_seq_rm(seq 0, all positions)

  let t0 = performance.now();
  await decode(native, 0, ids, true);
  const pp_s = (performance.now() - t0) / 1000;
  let tg_s = 0;
  if (o.n > 0) {
    t0 = performance.now();
    for (let i = 0; i < o.n; i++) await decode(native, o.p + i, [(i * 104729 + 7) % nVocab], true);
    tg_s = (performance.now() - t0) / 1000;
  }
  const out = {
    engine: "llama.cpp", model: o.model, threads: o.t, n_prompt: o.p, n_gen: o.n,
    pp_tok_s: o.p / pp_s, tg_tok_s: o.n > 0 ? o.n / tg_s : 0, load_s,
    flash_attn: o.fa, kv_type: "f16",
    node_llama_cpp: version, ...loadedBuild(),
    system_info: llama.systemInfo,
  };
  process.stdout.write(JSON.stringify(out) + "\n");
  await ctx.dispose();
  await model.dispose();
  await llama.dispose();
}

main().catch((e) => die(e?.stack ?? String(e)));
