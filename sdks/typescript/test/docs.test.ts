// docs/PLUGIN_COMMUNICATION.md's TypeScript sections quote files this suite builds and runs:
// each quoted block is verbatim in its file (as the Rust docs test checks for every snippet),
// and the "before" of the Plexica migration differs from the tested "after" only in the import
// and the token option.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { test } from "node:test";
import { REPO } from "./fixtures/manifests.js";

const GUIDE = readFileSync(resolve(REPO, "docs/PLUGIN_COMMUNICATION.md"), "utf8");
const typescript = GUIDE.slice(GUIDE.indexOf("\n## 12. TypeScript"));

interface Block {
  marker: string | undefined;
  language: string;
  code: string;
}

function blocks(text: string): Block[] {
  const found: Block[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const fence = /^```(\w*)$/.exec(lines[i] ?? "");
    if (!fence) continue;
    const end = lines.indexOf("```", i + 1);
    assert.ok(end > i, "an unclosed code block");
    const previous = lines[i - 1] ?? "";
    found.push({ marker: /^<!-- snippet: (.+) -->$/.exec(previous)?.[1], language: fence[1] ?? "", code: lines.slice(i + 1, end).join("\n") });
    i = end;
  }
  return found;
}

test("the guide has the TypeScript and Plexica sections, listed in its contents", () => {
  assert.ok(typescript.length > 1000);
  assert.match(GUIDE, /\n## 13\. Coming from Plexica\n/);
  assert.match(GUIDE, /\[TypeScript\]\(#12-typescript\)/);
  assert.match(GUIDE, /\[Coming from Plexica\]\(#13-coming-from-plexica\)/);
});

test("every TypeScript block quotes a tested file verbatim, but the original's 'before'", () => {
  const ts = blocks(typescript).filter((block) => block.language === "ts");
  assert.ok(ts.length >= 6, `found ${ts.length} blocks`);
  const unquoted = ts.filter((block) => block.marker === undefined);
  assert.equal(unquoted.length, 1, "only the 'before' block quotes no file");
  for (const block of ts.filter((b) => b.marker !== undefined)) {
    const file = readFileSync(resolve(REPO, block.marker as string), "utf8");
    assert.ok(file.includes(block.code), `${block.marker} no longer contains:\n${block.code}`);
  }
  const before = unquoted[0]?.code ?? "";
  const after = ts.find((block) => block.marker?.endsWith("plexica-plugin.ts"))?.code ?? "";
  assert.ok(after.startsWith("import { PlexicaPlugin"), "the 'after' block is the whole plugin");
  const expected = after.replace('from "@plexhub/sdk/plexica";', 'from "@plexica/sdk";').replace("    token: process.env.PLEXHUB_TOKEN,\n", "");
  assert.equal(before, expected);
  assert.equal(after.split("\n").length - before.split("\n").length, 1);
});

test("the walkthrough's files exist", () => {
  for (const path of ["examples/ts-hello/manifest.json", "sdks/typescript/README.md"]) readFileSync(resolve(REPO, path));
  const manifest = JSON.parse(readFileSync(resolve(REPO, "examples/ts-hello/manifest.json"), "utf8")) as { id: string };
  assert.ok(typescript.includes(`plexhub install ${manifest.id} `));
});
