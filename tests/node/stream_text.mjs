// Drives the Vercel AI SDK's streamText against agentrunner: a client-side tool, then the final answer.
// Usage: node stream_text.mjs <baseURL> <apiKey> <model> <out.json>
import { writeFileSync } from "node:fs";
import { createOpenAI } from "@ai-sdk/openai";
import { streamText, tool, stepCountIs } from "ai";
import { z } from "zod";

const [baseURL, apiKey, model, outPath] = process.argv.slice(2);
const openai = createOpenAI({ baseURL, apiKey });

const result = streamText({
  model: openai.responses(model),
  prompt: "What is the weather in Paris?",
  tools: {
    get_weather: tool({
      description: "Weather for a city",
      inputSchema: z.object({ city: z.string() }),
      execute: async ({ city }) => (city === "Paris" ? "sunny, 24C" : "unknown"),
    }),
  },
  stopWhen: stepCountIs(3),
});

let deltas = 0;
let text = "";
for await (const part of result.fullStream) {
  if (part.type === "text-delta") {
    deltas += 1;
    text += part.text;
  } else if (part.type === "error") {
    console.error("stream error", part.error);
    process.exit(2);
  }
}
const steps = await result.steps;
const toolCalls = steps.flatMap((s) => s.toolCalls.map((c) => ({ toolName: c.toolName, input: c.input })));
const toolResults = steps.flatMap((s) => s.toolResults.map((r) => ({ toolName: r.toolName, output: r.output })));
writeFileSync(outPath, JSON.stringify({ text, deltas, toolCalls, toolResults }));
