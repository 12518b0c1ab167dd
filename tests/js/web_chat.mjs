// The web chat page of `kiln serve` in headless Chromium (Debian's /usr/bin/chromium), driven
// by npm playwright-core. Usage: node web_chat.mjs BASE_URL MODEL_ID SCREENSHOT.png
// Sets a system prompt and temperature 0, sends a message, watches the answer stream in,
// compares it with the same request made directly, checks tokens/s, then stops a long answer
// with the Stop button and checks the server cancelled it. Prints one JSON line of findings;
// a failed check throws (exit code 1). Run by tests/py/test_web_page.py.
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import path from "node:path";

const nodeModules = process.env.KILN_NODE_MODULES;
if (!nodeModules) throw new Error("KILN_NODE_MODULES must point at .deps/node/node_modules");
const require = createRequire(path.join(nodeModules, "noop.js"));
const { chromium } = require("playwright-core");

const [base, model, screenshot] = process.argv.slice(2);
const SYSTEM = "You are a helpful assistant who answers in one short sentence.";
const QUESTION = "What is the capital of France?";

async function metrics() {
  const out = {};
  for (const line of (await (await fetch(base + "/metrics")).text()).split("\n")) {
    if (line && !line.startsWith("#")) {
      const at = line.lastIndexOf(" ");
      out[line.slice(0, at)] = Number(line.slice(at + 1));
    }
  }
  return out;
}

// Records, inside the page, every text the assistant bubbles show (a MutationObserver sees each
// streamed delta even when an answer takes only ~100 ms): window.__kilnStates = [[bubble, text]].
function recordStates() {
  window.__kilnStates = [];
  new MutationObserver(() => {
    const bubbles = document.querySelectorAll(".msg.assistant, .msg.error");
    if (!bubbles.length) return;
    const last = bubbles[bubbles.length - 1], states = window.__kilnStates;
    if (!last.dataset.seq) last.dataset.seq = String(states.length ? states.at(-1)[0] + 1 : 0);
    const entry = [Number(last.dataset.seq), last.textContent];
    const prev = states.at(-1);
    if (entry[1] && (!prev || prev[0] !== entry[0] || prev[1] !== entry[1])) states.push(entry);
  }).observe(document, { subtree: true, childList: true, characterData: true });
}

// Sends `text` and waits for the answer's stats line (the answer is over), optionally clicking
// Stop once the answer has stopAfterChars characters; returns the texts the answer's bubble
// showed, in order.
async function ask(page, text, { stopAfterChars = 0 } = {}) {
  const statsBefore = await page.locator("#log .stats").count();
  await page.fill("#input", text);
  await page.press("#input", "Enter");
  let stopped = false;
  for (let i = 0; i < 15000; ++i) {
    const state = await page.evaluate(() => {
      const bubbles = document.querySelectorAll(".msg.assistant, .msg.error");
      const last = bubbles[bubbles.length - 1];
      return { text: last ? last.textContent : "",
               stats: document.querySelectorAll("#log .stats").length };
    });
    if (state.stats > statsBefore) break;
    if (stopAfterChars && !stopped && state.text.length >= stopAfterChars) {
      await page.click("#stop");
      stopped = true;
    }
    await page.waitForTimeout(20);
  }
  const states = await page.evaluate(() => window.__kilnStates);
  const seq = states.at(-1)[0];
  return states.filter((e) => e[0] === seq).map((e) => e[1]);
}

const browser = await chromium.launch({
  executablePath: process.env.KILN_CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const findings = {};
try {
  const page = await browser.newPage({ viewport: { width: 1000, height: 720 } });
  await page.addInitScript(recordStates);
  const consoleErrors = [];
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  const sent = [];
  page.on("request", (r) => {
    if (r.url().endsWith("/v1/chat/completions")) sent.push(JSON.parse(r.postData()));
  });

  await page.goto(base + "/");
  assert.equal(await page.title(), "kiln chat");
  await page.waitForFunction((id) => document.getElementById("model").textContent === id, model);

  // 1. A streamed answer with a system prompt and temperature 0.
  await page.fill("#system", SYSTEM);
  await page.fill("#temperature", "0");
  await page.fill("#max_tokens", "40");
  const seen = await ask(page, QUESTION);
  const answer = seen.at(-1);
  assert.ok(answer && answer.length > 0, "no answer appeared");
  assert.ok(seen.length >= 3, `the answer did not stream (${seen.length} states seen)`);
  for (let i = 1; i < seen.length; ++i) assert.ok(seen[i].startsWith(seen[i - 1]), "text was not appended");
  assert.equal(sent.length, 1);
  const req = sent[0];
  assert.equal(req.stream, true);
  assert.equal(req.temperature, 0);
  assert.equal(req.max_tokens, 40);
  assert.deepEqual(req.messages, [{ role: "system", content: SYSTEM }, { role: "user", content: QUESTION }]);
  // The page shows exactly what the API answers to the same request (greedy).
  const direct = await (await fetch(base + "/v1/chat/completions", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ model, messages: req.messages, temperature: 0, max_tokens: 40 }),
  })).json();
  assert.equal(answer, direct.choices[0].message.content);
  const stats = await page.locator("#log .stats").last().textContent();
  assert.match(stats, /\d+(\.\d+)? tokens\/s/);
  assert.match(stats, new RegExp(`${direct.usage.completion_tokens} tokens`));
  findings.answer = answer;
  findings.stats = stats;
  findings.states = seen.length;

  // 2. The conversation continues with history; the Stop button ends a long answer.
  await page.fill("#max_tokens", "1500");
  const seen2 = await ask(page, "Now write a very long story about the city.", { stopAfterChars: 20 });
  assert.equal(sent.length, 2);
  assert.deepEqual(sent[1].messages.slice(0, 3),
                   [{ role: "system", content: SYSTEM }, { role: "user", content: QUESTION },
                    { role: "assistant", content: answer }]);
  const stats2 = await page.locator("#log .stats").last().textContent();
  assert.match(stats2, /stopped/);
  assert.match(stats2, /≈\d+ tokens in \d+\.\d+ s · \d+(\.\d+)? tokens\/s/);
  assert.ok(seen2.at(-1).length >= 20);
  assert.equal(await page.locator("#send").isDisabled(), false);
  let m = await metrics();
  for (let i = 0; i < 100 && (m.kiln_running > 0 || m.kiln_http_requests_in_flight > 0); ++i) {
    await new Promise((r) => setTimeout(r, 100));
    m = await metrics();
  }
  assert.equal(m.kiln_running, 0, "the stopped request is still running");
  assert.ok(m.kiln_generation_tokens_total < 1000, "the stopped answer ran to its end");
  assert.ok(m.kiln_http_client_disconnects_total >= 1);
  findings.stopped_stats = stats2;

  // 3. "New chat" clears the log and the history.
  await page.click("#reset");
  assert.equal(await page.locator(".msg").count(), 0);
  await page.fill("#max_tokens", "40");
  const seen3 = await ask(page, QUESTION);
  assert.equal(sent.length, 3);
  assert.equal(sent[2].messages.length, 2);
  assert.equal(seen3.at(-1), answer);

  await page.screenshot({ path: screenshot, fullPage: true });
  assert.deepEqual(consoleErrors, []);
  findings.screenshot = screenshot;
} finally {
  await browser.close();
}
console.log(JSON.stringify(findings));
