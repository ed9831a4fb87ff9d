// src/generated/openapi.ts is what openapi-typescript makes of the hub's /openapi.json today:
// regenerated from a hub started from PLEXHUB_BIN and compared (fix: `npm run generate`).
import assert from "node:assert/strict";
import { readFileSync, rmSync } from "node:fs";
import { test } from "node:test";
import { GENERATED, fetchDocument, renderTypes } from "../scripts/generate.mjs";
import { startHub } from "../scripts/hub.mjs";

test("the committed OpenAPI types are not stale", async () => {
  const hub = await startHub();
  try {
    const fresh = await renderTypes(await fetchDocument(hub.url));
    const committed = readFileSync(GENERATED, "utf8");
    assert.ok(fresh === committed, "src/generated/openapi.ts differs from the hub's /openapi.json: run `npm run generate` in sdks/typescript and commit it");
  } finally {
    await hub.stop();
    rmSync(hub.dataDir, { recursive: true, force: true });
  }
});
