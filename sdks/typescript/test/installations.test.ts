// A plugin installed for two tenants: one credential each, filed by tenant; one server verifying
// both installations' signatures (acme's Ed25519, globex's HMAC) and telling the tenants apart.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Client, Installations, SettingError, serve, type HubRequest } from "@plexhub/sdk";
import { caller as callerManifest, sample } from "./fixtures/manifests.js";
import { startWorld, type World } from "./fixtures/world.js";

let world: World;
let globexCrm: string;
let globexCaller: string;

before(async () => {
  world = await startWorld();
  await world.admin("POST", "/api/v1/tenants", { slug: "globex", name: "Globex" });
  const install = async (body: Record<string, unknown>) =>
    (await world.admin<{ credential: { token: string } }>("POST", "/api/v1/tenants/globex/installations", { activate: true, ...body })).credential.token;
  globexCrm = await install({ pluginId: "plugin-crm", baseUrl: `http://127.0.0.1:${world.ports.crm}` });
  globexCaller = await install({ pluginId: callerManifest.id, grants: ["plugin.crm.contacts.read"] });
});

after(async () => {
  await world?.stop();
});

test("credentials are filed by tenant, and must all be one plugin's", async () => {
  const installations = await Installations.connect(world.url, [world.crm.token, globexCrm]);
  assert.deepEqual(installations.tenants(), ["acme", "globex"]);
  assert.equal(installations.pluginId, "plugin-crm");
  assert.equal(installations.tenant("globex")?.tenant, "globex");
  assert.equal(installations.tenant("initech"), undefined);
  await assert.rejects(Installations.connect(world.url, [world.crm.token, world.caller.token]), SettingError);
  await assert.rejects(Installations.connect(world.url, []), SettingError);
  const fromEnv = await Installations.fromEnv({ PLEXHUB_URL: world.url, PLEXHUB_TOKENS: ` ${world.crm.token}, ${globexCrm} ` });
  assert.deepEqual(fromEnv.tenants(), ["acme", "globex"]);
});

test("one server, both tenants: each request verified and answered for its own tenant", async () => {
  const installations = await Installations.connect(world.url, [world.crm.token, globexCrm]);
  const plugin = await serve({
    manifest: sample("crm"),
    installations,
    port: world.ports.crm,
    handler: async (_req, res, hub: HubRequest) => {
      // Answer with the client of the request's tenant: its shared data, never the other's.
      const client = installations.tenant(hub.tenantSlug) as Client;
      await client.dataSet("seen", "last-caller", hub.caller);
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ data: [], total: 0, tenant: hub.tenantSlug, owner: client.tenant }));
    },
  });
  try {
    assert.equal(plugin.heartbeats.length, 2);
    const acme = await Client.fromCredential(world.url, world.caller.token);
    const globex = await Client.fromCredential(world.url, globexCaller);
    assert.deepEqual(await acme.getJson("crm.contacts", "/contacts"), { data: [], total: 0, tenant: "acme", owner: "acme" });
    assert.deepEqual(await globex.getJson("crm.contacts", "/contacts"), { data: [], total: 0, tenant: "globex", owner: "globex" });
    // Each tenant's shared data got its own entry: changing globex's leaves acme's alone.
    await installations.tenant("globex")?.dataSet("seen", "last-caller", "changed in globex");
    assert.equal((await acme.dataGet("seen", "last-caller"))?.value, "plugin-caller");
    assert.equal((await globex.dataGet("seen", "last-caller"))?.value, "changed in globex");
  } finally {
    await plugin.stop();
  }
});
