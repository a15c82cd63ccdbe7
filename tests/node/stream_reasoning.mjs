// Drives the Vercel AI SDK's streamText against agentrunner with reasoning asked for: reasoning, then text.
// Usage: node stream_reasoning.mjs <baseURL> <apiKey> <model> <out.json>
import { writeFileSync } from "node:fs";
import { createOpenAI } from "@ai-sdk/openai";
import { streamText } from "ai";

const [baseURL, apiKey, model, outPath] = process.argv.slice(2);
const openai = createOpenAI({ baseURL, apiKey });

const result = streamText({
  model: openai.responses(model),
  prompt: "What is 15 * 37?",
  providerOptions: { openai: { reasoningEffort: "low", reasoningSummary: "auto" } },
});

let reasoning = "";
let text = "";
for await (const part of result.fullStream) {
  if (part.type === "reasoning-delta") {
    reasoning += part.text;
  } else if (part.type === "text-delta") {
    text += part.text;
  } else if (part.type === "error") {
    console.error("stream error", part.error);
    process.exit(2);
  }
}
writeFileSync(outPath, JSON.stringify({ reasoning, text }));
