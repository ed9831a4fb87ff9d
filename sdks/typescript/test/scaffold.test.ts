// `plexhub new plugin --lang ts`: the generated project compiles against this package (linked
// as its `file:` dependency installs it), runs against a real hub and CRM, calls CRM through the
// gateway, refuses unsigned requests, and deregisters on SIGTERM. (The Rust project is checked by
// the hub's own tests.)
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, test } from "node:test";
import { freePort, hubBinary } from "../scripts/hub.mjs";
import { startCrm, type FakeCrm } from "./fixtures/crm.js";
import { REPO } from "./fixtures/manifests.js";
import { startWorld, type World } from "./fixtures/world.js";

const SDK = resolve(REPO, "sdks/typescript");

let world: World;
let crm: FakeCrm;
let work: string;

before(async () => {
  world = await startWorld();
  crm = await startCrm(world.url, world.crm.token, world.ports.crm);
  work = mkdtempSync(join(tmpdir(), "plexhub-new-"));
});

after(async () => {
  await crm?.stop();
  await world?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

test("a generated TypeScript plugin builds, calls CRM through the hub and serves behind the signature", async () => {
  const project = join(work, "tsgreeter");
  execFileSync(hubBinary(), ["new", "plugin", "tsgreeter", "--lang", "ts", "--dir", project, "--checkout", REPO], { stdio: "pipe" });
  for (const file of ["manifest.json", "package.json", "tsconfig.json", "src/main.ts", "README.md"]) assert.ok(existsSync(join(project, file)), file);
  const packageJson = JSON.parse(readFileSync(join(project, "package.json"), "utf8")) as { dependencies: Record<string, string> };
  assert.equal(packageJson.dependencies["@plexhub/sdk"], `file:${SDK}`);
  assert.match(readFileSync(join(project, "README.md"), "utf8"), /plexhub install plugin-tsgreeter --tenant acme .*--grant plugin\.crm\.contacts\.read/);

  // What `npm install` makes of the file: dependency, then the project's own build.
  mkdirSync(join(project, "node_modules/@plexhub"), { recursive: true });
  symlinkSync(SDK, join(project, "node_modules/@plexhub/sdk"));
  symlinkSync(join(SDK, "node_modules/@types"), join(project, "node_modules/@types"));
  execFileSync(process.execPath, [join(SDK, "node_modules/typescript/bin/tsc"), "-p", join(project, "tsconfig.json")], { stdio: "pipe" });

  const manifest = JSON.parse(readFileSync(join(project, "manifest.json"), "utf8")) as unknown;
  await world.admin("POST", "/api/v1/plugins", manifest);
  const port = await freePort();
  const installed = await world.admin<{ credential: { token: string } }>("POST", "/api/v1/tenants/acme/installations", {
    pluginId: "plugin-tsgreeter",
    baseUrl: `http://127.0.0.1:${port}`,
    activate: true,
    grants: ["plugin.crm.contacts.read"],
  });

  const child = spawn(process.execPath, ["dist/main.js"], {
    cwd: project,
    env: { ...process.env, PLEXHUB_URL: world.url, PLEXHUB_TOKEN: installed.credential.token, PORT: String(port) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: string[] = [];
  child.stdout.on("data", (chunk: Buffer) => lines.push(...chunk.toString().split("\n").filter(Boolean)));
  child.stderr.on("data", (chunk: Buffer) => lines.push(...chunk.toString().split("\n").filter(Boolean)));
  const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)));
  try {
    const deadline = Date.now() + 15_000;
    while (!lines.some((line) => line.startsWith("tsgreeter: serving on "))) {
      assert.ok(Date.now() < deadline, `the plugin did not start:\n${lines.join("\n")}`);
      await new Promise((wake) => setTimeout(wake, 50));
    }
    assert.equal(lines[0], "tsgreeter: CRM has 4 contacts in acme");

    // The call reached CRM through the gateway (the audit log is written in batches).
    let calls: { target: string; status: number }[] = [];
    for (let tries = 0; calls.length === 0 && tries < 40; tries++) {
      await new Promise((wake) => setTimeout(wake, 50));
      calls = (await world.admin<{ calls: { target: string; status: number }[] }>("GET", "/api/v1/calls?tenant=acme&caller=plugin-tsgreeter")).calls;
    }
    assert.deepEqual(calls.map((call) => [call.target, call.status]), [["plugin-crm", 200]]);
    const service = await world.admin<{ status: string }>("GET", "/api/v1/services/tsgreeter.hello", undefined, { "x-tenant-slug": "acme" });
    assert.equal(service.status, "HEALTHY", "registered by the plugin itself");
    const direct = await fetch(`http://127.0.0.1:${port}/hello`);
    assert.equal(direct.status, 401);
    assert.equal(((await direct.json()) as { error: { code: string } }).error.code, "UNSIGNED_REQUEST");
  } finally {
    child.kill("SIGTERM");
  }
  assert.equal(await exited, 0);
});
