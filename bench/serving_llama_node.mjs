#!/usr/bin/env node
// llama.cpp with parallel sequences (npm node-llama-cpp, prebuilt CPU binaries): the batched
// peer of bench/serving_bench.py's throughput workload. One context with S sequences; S
// concurrent LlamaCompletion generations (greedy, end-of-generation tokens banned, exactly
// --gen tokens each), which node-llama-cpp batches into shared llama_decode calls.
//
//   node bench/serving_llama_node.mjs -m MODEL.gguf [-t 2] [--streams 16] [--gen 64]
//        [--prompt-words 48] [--salt 0]
//
// Prints ONE JSON line: streams, wall_s, tok_s (S * gen / wall), cpu_s (the process's user +
// system CPU time over the run) and tok_per_cpu_s, ttft/itl p50/p99 (ms, from
// onTextChunk timestamps), and the llama.cpp build that ran. Prompts are wikitext slices chosen
// as serving_bench.py chooses them (same words, same offsets).
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, "..");
const wikitext = path.resolve(repoRoot, "..", "shared", "data", "wikitext-2-raw", "wiki.test.raw");

function die(msg) {
  process.stderr.write(`serving_llama_node: ${msg}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const o = { model: null, t: 2, streams: 16, gen: 64, words: 48, salt: 0 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => (i + 1 < argv.length ? argv[++i] : die(`missing value for ${a}`));
    if (a === "-m" || a === "--model") o.model = val();
    else if (a === "-t" || a === "--threads") o.t = Number(val());
    else if (a === "--streams") o.streams = Number(val());
    else if (a === "--gen") o.gen = Number(val());
    else if (a === "--prompt-words") o.words = Number(val());
    else if (a === "--salt") o.salt = Number(val());
    else die(`unexpected argument ${a}`);
  }
  if (!o.model) die("needs -m MODEL");
  return o;
}

function pct(xs, q) {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.round((q / 100) * (s.length - 1)))];
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const base = process.env.KILN_NODE_MODULES || path.join(repoRoot, ".deps", "node", "node_modules");
  const require = createRequire(path.join(base, "noop.js"));
  const entry = require.resolve("node-llama-cpp");
  const pkg = JSON.parse(fs.readFileSync(path.join(path.dirname(entry), "..", "package.json"), "utf8"));
  const { getLlama, LlamaCompletion, TokenBias } = await import(pathToFileURL(entry).href);
  const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" });
  const model = await llama.loadModel({ modelPath: o.model });
  const words = fs.readFileSync(wikitext, "utf8").split(/\s+/).filter((w) => w.length);
  const promptOf = (start, n) => {
    start %= words.length - n;
    return words.slice(start, start + n).join(" ");
  };
  const context = await model.createContext({
    sequences: o.streams, threads: o.t, batchSize: 512,
    contextSize: o.streams * Math.max(512, o.words * 3 + o.gen + 64),
  });
  const bias = new TokenBias(model.tokenizer);
  for (const t of [0, 1, 2]) bias.set(t, "never");  // as serving_bench.py's logit_bias
  const seqs = [], comps = [];
  for (let i = 0; i < o.streams; i++) {
    seqs.push(context.getSequence());
    comps.push(new LlamaCompletion({ contextSequence: seqs[i] }));
  }
  // warm-up on one sequence (page in the weights)
  await comps[0].generateCompletion(promptOf(10, 20), { maxTokens: 4, temperature: 0 });
  await seqs[0].clearHistory();

  const ttft = [], itl = [];
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const runs = comps.map(async (c, i) => {
    const prompt = promptOf(1000 + (o.salt * 97 + i) * 211, o.words);
    const start = performance.now();
    const times = [];
    const res = await c.generateCompletionWithMeta(prompt, {
      maxTokens: o.gen, temperature: 0, tokenBias: bias,
      onToken: () => times.push(performance.now()),
    });
    if (res.metadata.stopReason !== "maxTokens") die(`stream ${i} stopped by ${res.metadata.stopReason}`);
    if (times.length) ttft.push(times[0] - start);
    for (let k = 1; k < times.length; k++) itl.push(times[k] - times[k - 1]);
    return times.length;
  });
  const counts = await Promise.all(runs);
  const wall = (performance.now() - t0) / 1000;
  const cpuUs = process.cpuUsage(cpu0);
  const cpuS = (cpuUs.user + cpuUs.system) / 1e6;
  const maps = fs.readFileSync("/proc/self/maps", "utf8");
  const cpu = maps.match(/libggml-cpu-([a-z0-9_]+)\.so/);
  console.log(JSON.stringify({
    engine: "llama-node", streams: o.streams, wall_s: wall, tok_s: (o.streams * o.gen) / wall,
    cpu_s: cpuS, tok_per_cpu_s: (o.streams * o.gen) / cpuS,
    tokens_seen: counts.reduce((a, b) => a + b, 0),
    ttft_p50: pct(ttft, 50), ttft_p99: pct(ttft, 99), itl_p50: pct(itl, 50), itl_p99: pct(itl, 99),
    node_llama_cpp: pkg.version, cpu_variant: cpu ? cpu[1] : null,
  }));
  await context.dispose();
  await model.dispose();
}

main().catch((e) => die(e.stack || String(e)));
