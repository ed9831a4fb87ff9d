// examples/ts-hello, built with this package's TypeScript against this package (as its
// `file:../../sdks/typescript` dependency installs it) and run against a real hub and CRM.
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, test } from "node:test";
import { Client } from "@plexhub/sdk";
import { freePort } from "../scripts/hub.mjs";
import { startCrm, type FakeCrm } from "./fixtures/crm.js";
import { REPO } from "./fixtures/manifests.js";
import { startWorld, type World } from "./fixtures/world.js";

const EXAMPLE = resolve(REPO, "examples/ts-hello");
const SDK = resolve(REPO, "sdks/typescript");

let world: World;
let crm: FakeCrm;
let built: string;

/** Copies the example to a temp dir, links the SDK (and the types it needs) as npm would, compiles it. */
function build(): string {
  const dir = mkdtempSync(join(tmpdir(), "ts-hello-"));
  for (const entry of ["src", "manifest.json", "package.json", "tsconfig.json"]) cpSync(join(EXAMPLE, entry), join(dir, entry), { recursive: true });
  mkdirSync(join(dir, "node_modules/@plexhub"), { recursive: true });
  symlinkSync(SDK, join(dir, "node_modules/@plexhub/sdk"));
  symlinkSync(join(SDK, "node_modules/@types"), join(dir, "node_modules/@types"));
  execFileSync(process.execPath, [join(SDK, "node_modules/typescript/bin/tsc"), "-p", join(dir, "tsconfig.json")], { stdio: "pipe" });
  return dir;
}

before(async () => {
  world = await startWorld();
  crm = await startCrm(world.url, world.crm.token, world.ports.crm);
  built = build();
});

after(async () => {
  await crm?.stop();
  await world?.stop();
  if (built) rmSync(built, { recursive: true, force: true });
});

interface Run {
  lines: string[];
  exited: Promise<number | null>;
  waitFor(pattern: RegExp): Promise<string>;
  kill(signal: NodeJS.Signals): void;
}

function run(env: Record<string, string>): Run {
  const child = spawn(process.execPath, ["dist/main.js"], { cwd: built, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  const lines: string[] = [];
  const waiters: (() => void)[] = [];
  const take = (chunk: Buffer) => {
    lines.push(...chunk.toString().split("\n").filter(Boolean));
    for (const wake of waiters.splice(0)) wake();
  };
  child.stdout.on("data", take);
  child.stderr.on("data", take);
  const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)));
  return {
    lines,
    exited,
    kill: (signal) => child.kill(signal),
    async waitFor(pattern) {
      const deadline = Date.now() + 10_000;
      for (;;) {
        const line = lines.find((l) => pattern.test(l));
        if (line) return line;
        assert.ok(Date.now() < deadline, `no line matching ${pattern} in:\n${lines.join("\n")}`);
        await Promise.race([new Promise<void>((wake) => waiters.push(wake)), exited, new Promise((d) => setTimeout(d, 200))]);
      }
    },
  };
}

test("ts-hello greets CRM's contacts, counts its runs, serves behind the signature and stops on SIGTERM", async () => {
  const manifest = JSON.parse(readFileSync(join(EXAMPLE, "manifest.json"), "utf8")) as unknown;
  await world.admin("POST", "/api/v1/plugins", manifest);
  const port = await freePort();

  // Without the grant: the hub's refusal, explained.
  const denied = await world.admin<{ credential: { token: string } }>("POST", "/api/v1/tenants/acme/installations", { pluginId: "plugin-ts-hello", baseUrl: `http://127.0.0.1:${port}`, activate: true });
  const refused = run({ PLEXHUB_URL: world.url, PLEXHUB_TOKEN: denied.credential.token });
  assert.equal(await refused.exited, 1);
  assert.match(refused.lines.join("\n"), /grant it the permission first: .*plugin\.crm\.contacts\.read/);
  await world.admin("PUT", "/api/v1/tenants/acme/installations/plugin-ts-hello/grants", { grants: ["plugin.crm.contacts.read"] });

  const once = run({ PLEXHUB_URL: world.url, PLEXHUB_TOKEN: denied.credential.token });
  assert.equal(await once.exited, 0);
  assert.deepEqual(once.lines, [
    "Hello, Michael Chen (GlobalTech Solutions)!",
    "Hello, Emily Davis (no company)!",
    "Hello, Sarah Johnson (TechStart Inc)!",
    "Hello, John Smith (Acme Corporation)!",
    "4 contacts greeted; run number 1",
  ]);

  const serving = run({ PLEXHUB_URL: world.url, PLEXHUB_TOKEN: denied.credential.token, PORT: String(port) });
  try {
    await serving.waitFor(/run number 2$/);
    await serving.waitFor(/^plexhub-ts-hello serving on http:\/\/127\.0\.0\.1:\d+ for acme$/);
    const direct = await fetch(`http://127.0.0.1:${port}/greetings`);
    assert.equal(direct.status, 401);
    assert.equal(((await direct.json()) as { error: { code: string } }).error.code, "UNSIGNED_REQUEST");
    const caller = await Client.fromCredential(world.url, world.caller.token);
    const greetings = await caller.getJson<{ greeted: string[]; tenant: string; caller: string }>("tshello.greetings", "/greetings");
    assert.equal(greetings.greeted.length, 4);
    assert.deepEqual([greetings.tenant, greetings.caller], ["acme", "plugin-caller"]);
    await caller.postJson("crm.contacts", "/contacts", { firstName: "Ada", lastName: "Lovelace" });
    await serving.waitFor(/^CRM says plugin\.crm\.contact\.created in acme: Ada Lovelace$/);
  } finally {
    serving.kill("SIGTERM");
  }
  assert.equal(await serving.exited, 0);
  const replicas = await world.admin<{ instances: unknown[] }>("GET", "/api/v1/services/tshello.greetings", undefined, { "x-tenant-slug": "acme" });
  assert.deepEqual(replicas.instances, []);
});
