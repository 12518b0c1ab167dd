// Reference tokenization through llama.cpp (npm node-llama-cpp, prebuilt CPU binary).
// usage: node llama_cpp_tokenize.mjs MODEL.gguf < requests.json  (a JSON array of
// {"text": "...", "special": bool}); prints a JSON array of token id arrays.
import fs from "node:fs";
import path from "node:path";
import {pathToFileURL} from "node:url";

// ESM ignores NODE_PATH: import the package from the project's .deps folder explicitly.
const nodeModules = process.env.KILN_NODE_MODULES ??
    path.join(path.dirname(new URL(import.meta.url).pathname), "../../.deps/node/node_modules");
const {getLlama} = await import(
    pathToFileURL(path.join(nodeModules, "node-llama-cpp/dist/index.js")).href);

const [modelPath] = process.argv.slice(2);
const reqs = JSON.parse(fs.readFileSync(0, "utf8"));
const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const model = await llama.loadModel({modelPath, vocabOnly: true});
const out = reqs.map((r) => Array.from(model.tokenize(r.text, r.special)));
process.stdout.write(JSON.stringify(out));
await model.dispose();
