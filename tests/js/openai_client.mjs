// The official `openai` npm package, unmodified, against a running `kiln serve`.
// Usage: node openai_client.mjs BASE_URL MODEL_ID [API_KEY]
// With API_KEY the server requires it: checks AuthenticationError and an authorized call only.
// Prints one JSON line {"passed": [check names]}; any failed check throws (exit code 1).
// Run by tests/py/test_server_npm.py, which starts the server.
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import path from "node:path";

const nodeModules = process.env.KILN_NODE_MODULES;
if (!nodeModules) throw new Error("KILN_NODE_MODULES must point at .deps/node/node_modules");
const require = createRequire(path.join(nodeModules, "noop.js"));
const OpenAI = require("openai");

const [base, model, apiKey] = process.argv.slice(2);
const MSG = [{ role: "user", content: "Name three colours." }];
const passed = [];

function client(key) {
  return new OpenAI({ baseURL: base + "/v1", apiKey: key, timeout: 300_000, maxRetries: 0 });
}

async function check(name, fn) {
  await fn();
  passed.push(name);
}

// Expects `promise` to reject with an instance of `cls`; returns the error.
async function rejects(promise, cls) {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${e && e.constructor.name}: ${e}`);
    return e;
  }
  assert.fail(`expected ${cls.name}, the call succeeded`);
}

async function streamChat(c, body) {
  const chunks = [];
  for await (const chunk of await c.chat.completions.create({ ...body, stream: true })) {
    chunks.push(chunk);
  }
  return chunks;
}

async function metrics() {
  const r = await fetch(base + "/metrics");
  const out = {};
  for (const line of (await r.text()).split("\n")) {
    if (line && !line.startsWith("#")) {
      const at = line.lastIndexOf(" ");
      out[line.slice(0, at)] = Number(line.slice(at + 1));
    }
  }
  return out;
}

async function authOnly() {
  await check("authentication_error", async () => {
    const e = await rejects(client("wrong-key").models.list(), OpenAI.AuthenticationError);
    assert.equal(e.status, 401);
    await rejects(client("wrong-key").chat.completions.create({ model, messages: MSG }),
                  OpenAI.AuthenticationError);
  });
  await check("authorized", async () => {
    const c = client(apiKey);
    assert.deepEqual((await c.models.list()).data.map((m) => m.id), [model]);
    const r = await c.chat.completions.create({ model, messages: MSG, max_tokens: 3 });
    assert.ok(r.usage.completion_tokens >= 1 && r.usage.completion_tokens <= 3);
    if (r.choices[0].finish_reason === "length") assert.equal(r.usage.completion_tokens, 3);
  });
}

async function main() {
  if (apiKey) return authOnly();
  const c = client("unused");

  await check("models", async () => {
    const models = await c.models.list();
    assert.deepEqual(models.data.map((m) => m.id), [model]);
    assert.equal((await c.models.retrieve(model)).id, model);
  });

  let greedy;
  await check("chat", async () => {
    const r = await c.chat.completions.create({ model, messages: MSG, max_tokens: 12, temperature: 0 });
    assert.match(r.id, /^chatcmpl-/);
    assert.equal(r.object, "chat.completion");
    assert.equal(r.model, model);
    assert.equal(r.choices.length, 1);
    assert.equal(r.choices[0].message.role, "assistant");
    assert.equal(r.choices[0].finish_reason, "length");
    assert.equal(r.usage.completion_tokens, 12);
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + 12);
    assert.ok(r.choices[0].message.content.length > 0);
    greedy = r.choices[0].message.content;
  });

  await check("chat_stream_include_usage", async () => {
    const chunks = await streamChat(c, { model, messages: MSG, max_tokens: 12, temperature: 0,
                                         stream_options: { include_usage: true } });
    assert.equal(chunks[0].choices[0].delta.role, "assistant");
    const text = chunks.flatMap((k) => k.choices.map((ch) => ch.delta.content ?? "")).join("");
    assert.equal(text, greedy);
    const last = chunks.at(-1);
    assert.deepEqual(last.choices, []);
    assert.equal(last.usage.completion_tokens, 12);
    for (const k of chunks.slice(0, -1)) assert.equal(k.usage ?? null, null);
    assert.equal(new Set(chunks.map((k) => k.id)).size, 1);
    // The SDK's own stream accumulator must rebuild the same completion.
    const runner = c.chat.completions.stream({ model, messages: MSG, max_tokens: 12, temperature: 0 });
    const final = await runner.finalChatCompletion();
    assert.equal(final.choices[0].message.content, greedy);
    assert.equal(final.choices[0].finish_reason, "length");
  });

  await check("chat_n", async () => {
    const r = await c.chat.completions.create({ model, messages: MSG, max_tokens: 8, n: 3,
                                               temperature: 1.0, seed: 7 });
    assert.deepEqual(r.choices.map((ch) => ch.index), [0, 1, 2]);
    for (const ch of r.choices) assert.ok(["stop", "length"].includes(ch.finish_reason));
    assert.ok(r.usage.completion_tokens >= 3 && r.usage.completion_tokens <= 24);
    if (r.choices.every((ch) => ch.finish_reason === "length")) assert.equal(r.usage.completion_tokens, 24);
    const chunks = await streamChat(c, { model, messages: MSG, max_tokens: 6, n: 2, seed: 7 });
    const finished = chunks.flatMap((k) => k.choices.filter((ch) => ch.finish_reason).map((ch) => ch.index));
    assert.deepEqual(finished.sort(), [0, 1]);
  });

  await check("seed", async () => {
    const run = async (seed) => (await c.chat.completions.create(
        { model, messages: MSG, max_tokens: 16, temperature: 1.0, seed })).choices[0].message.content;
    const a = await run(1234), b = await run(1234);
    assert.equal(a, b);
    const others = new Set([a, await run(1), await run(2), await run(3)]);
    assert.ok(others.size > 1, "different seeds never changed the text");
  });

  await check("stop", async () => {
    const prompt = "The capital of France is";
    const full = (await c.completions.create({ model, prompt, max_tokens: 16, temperature: 0 })).choices[0].text;
    const words = full.split(/\s+/).filter(Boolean);
    assert.ok(words.length >= 3, full);
    const stop = " " + words[2];
    const cut = await c.completions.create({ model, prompt, max_tokens: 16, temperature: 0, stop: [stop] });
    assert.equal(cut.choices[0].text, full.slice(0, full.indexOf(stop)));
    assert.equal(cut.choices[0].finish_reason, "stop");
    const chat = await c.chat.completions.create({ model, messages: MSG, max_tokens: 12, temperature: 0,
                                                  stop: greedy.slice(4, 7) });
    assert.equal(chat.choices[0].message.content, greedy.slice(0, greedy.indexOf(greedy.slice(4, 7))));
    assert.equal(chat.choices[0].finish_reason, "stop");
  });

  await check("chat_logprobs", async () => {
    const r = await c.chat.completions.create({ model, messages: MSG, max_tokens: 5, temperature: 0,
                                               logprobs: true, top_logprobs: 3 });
    const content = r.choices[0].logprobs.content;
    assert.equal(content.length, 5);
    for (const e of content) {
      assert.ok(e.logprob <= 0);
      assert.equal(e.top_logprobs.length, 3);
      const lps = e.top_logprobs.map((t) => t.logprob);
      assert.deepEqual(lps, [...lps].sort((x, y) => y - x));
      assert.equal(e.top_logprobs[0].token, e.token);  // greedy picks the most likely token
      assert.ok(Math.abs(e.top_logprobs[0].logprob - e.logprob) < 1e-4);
      assert.ok(Array.isArray(e.bytes));
    }
    assert.equal(content.map((e) => e.token).join(""), r.choices[0].message.content);
    const chunks = await streamChat(c, { model, messages: MSG, max_tokens: 5, temperature: 0,
                                         logprobs: true, top_logprobs: 2 });
    const streamed = chunks.flatMap((k) => k.choices.flatMap((ch) => ch.logprobs?.content ?? []));
    assert.deepEqual(streamed.map((e) => e.token), content.map((e) => e.token));
  });

  await check("completions", async () => {
    const prompt = "Once upon a time";
    const r = await c.completions.create({ model, prompt, max_tokens: 8, temperature: 0, logprobs: 2 });
    assert.match(r.id, /^cmpl-/);
    assert.equal(r.object, "text_completion");
    assert.equal(r.usage.completion_tokens, 8);
    const lp = r.choices[0].logprobs;
    assert.equal(lp.tokens.join(""), r.choices[0].text);
    assert.equal(lp.text_offset[0], 0);
    assert.equal(lp.top_logprobs.length, 8);
    const parts = [];
    let usage = null;
    for await (const k of await c.completions.create({ model, prompt, max_tokens: 8, temperature: 0,
                                                        stream: true, stream_options: { include_usage: true } })) {
      for (const ch of k.choices) parts.push(ch.text);
      if (k.usage) usage = k.usage;
    }
    assert.equal(parts.join(""), r.choices[0].text);
    assert.equal(usage.completion_tokens, 8);
  });

  await check("error_classes", async () => {
    let e = await rejects(c.chat.completions.create({ model, messages: MSG, temperature: 5 }),
                          OpenAI.BadRequestError);
    assert.equal(e.status, 400);
    assert.equal(e.param, "temperature");
    e = await rejects(c.chat.completions.create({ model: "no-such-model", messages: MSG }),
                      OpenAI.NotFoundError);
    assert.equal(e.status, 404);
    assert.equal(e.code, "model_not_found");
    e = await rejects(c.chat.completions.create({ model, messages: MSG, max_tokens: 1e6 }),
                      OpenAI.BadRequestError);
    assert.equal(e.code, "context_length_exceeded");
    await rejects(c.chat.completions.create({ model, messages: [] }), OpenAI.BadRequestError);
    e = await rejects(c.chat.completions.create({ model, messages: MSG, n: 0, stream: true }),
                      OpenAI.BadRequestError);
    assert.equal(e.param, "n");
    await rejects(c.completions.create({ model, prompt: "x", max_tokens: -2 }), OpenAI.BadRequestError);
  });

  await check("abort_frees_kv", async () => {
    const before = await metrics();
    const ac = new AbortController();
    const s = await c.chat.completions.create(
        { model, messages: MSG, max_tokens: 1500, ignore_eos: true, stream: true },
        { signal: ac.signal });
    let n = 0;
    for await (const _ of s) if (++n === 3) ac.abort();  // the SDK ends the iteration quietly
    assert.ok(n >= 3 && n < 50, `${n} chunks after the abort`);
    let m = await metrics();
    for (let i = 0; i < 100 && (m.kiln_running > 0 || m.kiln_http_requests_in_flight > 0); ++i) {
      await new Promise((r) => setTimeout(r, 100));
      m = await metrics();
    }
    assert.equal(m.kiln_running, 0);
    assert.equal(m.kiln_http_requests_in_flight, 0);
    assert.equal(m.kiln_kv_blocks_used, m.kiln_kv_blocks_cached, "blocks still held by a sequence");
    assert.ok(m.kiln_http_client_disconnects_total > before.kiln_http_client_disconnects_total);
  });
}

await main();
console.log(JSON.stringify({ passed }));
