// `npm pack` makes a package a new project installs from the tarball and uses with the README's
// first five lines (run here against a real hub), with its declarations for both entry points.
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { promisify } from "node:util";
import { readdirSync, readFileSync, writeFileSync, mkdtempSync, existsSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, test } from "node:test";
import { startCrm, type FakeCrm } from "./fixtures/crm.js";
import { REPO } from "./fixtures/manifests.js";
import { startWorld, type World } from "./fixtures/world.js";

const SDK = resolve(REPO, "sdks/typescript");
const NPM = process.platform === "win32" ? "npm.cmd" : "npm";

let world: World;
let crm: FakeCrm;

before(async () => {
  world = await startWorld();
  crm = await startCrm(world.url, world.crm.token, world.ports.crm);
});

after(async () => {
  await crm?.stop();
  await world?.stop();
});

test("the packed tarball installs in a new project and runs the README's five lines", async (t) => {
  const out = mkdtempSync(join(tmpdir(), "plexhub-pack-"));
  const project = mkdtempSync(join(tmpdir(), "plexhub-consumer-"));
  t.after(() => {
    rmSync(out, { recursive: true, force: true });
    rmSync(project, { recursive: true, force: true });
  });
  execFileSync(NPM, ["pack", "--silent", "--pack-destination", out], { cwd: SDK, stdio: "pipe" });
  const tarball = readdirSync(out).find((name) => name.endsWith(".tgz"));
  assert.ok(tarball, "npm pack made no tarball");

  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "consumer", version: "1.0.0", private: true, type: "module" }));
  execFileSync(NPM, ["install", "--offline", "--no-audit", "--no-fund", join(out, tarball)], { cwd: project, stdio: "pipe" });
  const installed = join(project, "node_modules/@plexhub/sdk");
  const manifest = JSON.parse(readFileSync(join(installed, "package.json"), "utf8")) as { dependencies?: object };
  assert.equal(manifest.dependencies, undefined, "no runtime dependency");
  assert.ok(existsSync(join(installed, "dist/index.d.ts")));
  assert.ok(!existsSync(join(installed, "src")) && !existsSync(join(installed, "dist-test")));

  const readme = readFileSync(join(SDK, "README.md"), "utf8");
  const five = /^```js\n([\s\S]*?)\n```/.exec(readme)?.[1];
  assert.ok(five, "README.md starts with a js block");
  assert.equal(five.split("\n").length, 5);
  writeFileSync(join(project, "index.mjs"), five);
  // Asynchronously: the CRM it calls runs in this process.
  const { stdout: output } = await promisify(execFile)(process.execPath, ["index.mjs"], { cwd: project, env: { ...process.env, PLEXHUB_URL: world.url, PLEXHUB_TOKEN: world.caller.token }, encoding: "utf8" });
  assert.match(output, /^plugin-caller in acme: \{/);
  assert.match(output, /Michael/);

  const plexica = execFileSync(process.execPath, ["--input-type=module", "-e", "const m = await import('@plexhub/sdk/plexica'); console.log(typeof m.PlexicaPlugin, typeof m.ApiClient)"], { cwd: project, encoding: "utf8" });
  assert.equal(plexica.trim(), "function function");

  // The declarations resolve for a TypeScript consumer (NodeNext), both entry points.
  writeFileSync(
    join(project, "check.ts"),
    [
      'import { Client, PlexhubError, type HubRequest } from "@plexhub/sdk";',
      'import { PlexicaPlugin, type ApiResponse } from "@plexhub/sdk/plexica";',
      "export async function f(hub: Client): Promise<string | undefined> {",
      "  const r: ApiResponse = { success: true, status: 200 };",
      '  try { await hub.dataSet("a", "b", 1, { ttl: 5 }); } catch (e) { if (e instanceof PlexhubError) return e.code; }',
      "  const req: HubRequest | undefined = undefined; void req; void r; void PlexicaPlugin;",
      "  return hub.tenant;",
      "}",
    ].join("\n"),
  );
  execFileSync(
    process.execPath,
    [join(SDK, "node_modules/typescript/bin/tsc"), "--noEmit", "--strict", "--module", "nodenext", "--moduleResolution", "nodenext", "--target", "es2022", "--typeRoots", join(SDK, "node_modules/@types"), "--types", "node", "check.ts"],
    { cwd: project, stdio: "pipe" },
  );
});
