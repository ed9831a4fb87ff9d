// The migration classes (@plexhub/sdk/plexica) running a plugin written for the original SDK.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Client } from "@plexhub/sdk";
import { ApiClient, type ApiResponse } from "@plexhub/sdk/plexica";
import { startCrm, type FakeCrm } from "./fixtures/crm.js";
import { ReportsPlugin, createPlugin } from "./fixtures/plexica-plugin.js";
import { startWorld, type World } from "./fixtures/world.js";

let world: World;
let crm: FakeCrm;
let reports: Client;

before(async () => {
  world = await startWorld();
  crm = await startCrm(world.url, world.crm.token, world.ports.crm);
  reports = await Client.fromCredential(world.url, world.reports.token);
});

after(async () => {
  await crm?.stop();
  await world?.stop();
});

/** Builds with `PLEXHUB_TOKEN` set to `token` (the plugin reads its credential from there). */
function withToken<T>(token: string, build: () => T): T {
  const saved = process.env["PLEXHUB_TOKEN"];
  process.env["PLEXHUB_TOKEN"] = token;
  try {
    return build();
  } finally {
    if (saved === undefined) delete process.env["PLEXHUB_TOKEN"];
    else process.env["PLEXHUB_TOKEN"] = saved;
  }
}

describe("PlexicaPlugin", () => {
  test("without a credential, start() fails with the hub's code", async () => {
    const saved = process.env["PLEXHUB_TOKEN"];
    delete process.env["PLEXHUB_TOKEN"];
    try {
      const plugin = new (class extends ReportsPlugin {})({ pluginId: "plugin-reports", name: "Reports", version: "1.0.0", apiBaseUrl: world.url });
      await assert.rejects(plugin.start("acme"), { code: "UNAUTHENTICATED" });
      const wrong = withToken("phk_0000000000000000.wrong", () => createPlugin(world.url, world.ports.reports));
      await assert.rejects(wrong.start(), { code: "UNAUTHENTICATED", status: 401 });
      assert.equal(wrong.isStarted(), false);
    } finally {
      if (saved !== undefined) process.env["PLEXHUB_TOKEN"] = saved;
    }
  });

  test("another tenant than the credential's is refused", async () => {
    const plugin = withToken(world.reports.token, () => createPlugin(world.url, world.ports.reports));
    await assert.rejects(plugin.start("globex"), { code: "TENANT_MISMATCH" });
  });

  test("the original plugin body runs: registers, discovers, calls CRM, shares, publishes; stop deregisters", async () => {
    const plugin = withToken(world.reports.token, () => createPlugin(world.url, world.ports.reports));
    assert.equal(plugin.getContext().tenantId, "");
    await plugin.start("acme");
    assert.equal(plugin.isStarted(), true);
    assert.deepEqual(plugin.getContext(), { pluginId: "plugin-reports", tenantId: "acme", tenantSlug: "acme" });

    // onActivate's effects, seen through the native client.
    const shared = await reports.dataGet<Record<string, number>>("plugin-reports", "contacts-by-company");
    assert.deepEqual(shared?.value, { "Acme Corporation": 1, "GlobalTech Solutions": 1, "TechStart Inc": 1, "(none)": 1 });
    assert.ok(shared?.expiresAt);
    const abort = new AbortController();
    for await (const { event } of reports.eventStream({ pattern: "plugin.reports.#", lastEventId: "0", signal: abort.signal })) {
      assert.equal(event.type, "plugin.reports.summary.ready");
      assert.deepEqual(event.data, { companies: 4 });
      abort.abort();
    }
    const registered = await reports.discover("reports.summary");
    assert.equal(registered?.baseUrl, `http://127.0.0.1:${world.ports.reports}`);

    // The original's clients, with the hub's names and the original's aliases.
    const discovered = await plugin.services.discoverService("crm.contacts", { version: "^1.0.0" });
    assert.equal(discovered.success, true);
    assert.equal(discovered.data?.name, "crm.contacts");
    assert.equal(discovered.data?.serviceName, "crm.contacts");
    assert.equal(discovered.data?.health, "HEALTHY");
    const listed = await plugin.services.listServices({ pluginId: "plugin-crm" });
    assert.deepEqual(listed.data?.map((s) => s.name), ["crm.contacts", "crm.deals"]);
    assert.equal(listed.total, 2);
    assert.equal((await plugin.sharedData.get("contacts-by-company")).success, true);
    assert.deepEqual((await plugin.sharedData.listKeys()).data, ["contacts-by-company"]);
    const again = await plugin.services.registerService(plugin.getServiceDefinitions()[0]!);
    assert.equal(again.success, true);
    assert.ok((again.data?.heartbeatIntervalSeconds ?? 0) > 0);
    assert.equal((await plugin.services.heartbeat(again.data?.serviceId ?? "")).success, true);
    assert.equal((await plugin.services.heartbeat("no-such-service")).success, false);

    // Errors keep the hub's code, details and request id.
    const denied = await plugin.services.callPluginApi({ targetPluginId: "plugin-crm", serviceName: "crm.deals", method: "GET", path: "/deals" });
    assert.equal(denied.success, false);
    assert.equal(denied.status, 403);
    assert.equal(denied.code, "ACCESS_DENIED");
    assert.equal(typeof denied.error, "string");
    assert.match(denied.requestId ?? "", /^[0-9a-f-]{36}$/);
    const missing = await plugin.services.discoverService("crm.nothing");
    assert.equal(missing.code, "SERVICE_NOT_FOUND");
    assert.ok(missing.details);

    await plugin.stop();
    assert.equal(plugin.isStarted(), false);
    assert.equal(await reports.discover("reports.summary"), undefined);
    assert.equal((await plugin.sharedData.delete("contacts-by-company")).success, true);
  });
});

describe("ApiClient", () => {
  test("sends the credential's tenant, not the context's empty one, and answers ApiResponse", async () => {
    const api = new ApiClient({ baseUrl: world.url, context: { pluginId: "plugin-reports", tenantId: "" }, token: world.reports.token });
    const who: ApiResponse<{ tenant: string }> = await api.get("/api/v1/whoami");
    assert.deepEqual([who.success, who.status, who.data?.tenant], [true, 200, "acme"]);
    const native: ApiResponse = await api.put("/api/v1/data/plugin-reports/k", { value: 1 }, { headers: { "if-match": "9" } });
    assert.equal(native.code, "PRECONDITION_FAILED");
    assert.equal(native.status, 412);
    assert.equal(native.error, native.message);
    // The seed's flat error shape: the message in `error`, the code kept.
    const mismatch = await api.post("/api/plugin-gateway/shared-data", { namespace: "x", key: "y", value: 1, ownerId: "plugin-crm" });
    assert.deepEqual([mismatch.success, mismatch.status, mismatch.code], [false, 403, "OWNER_MISMATCH"]);
    assert.match(mismatch.error ?? "", /plugin-crm/);
    const unreachable = await new ApiClient({ baseUrl: "http://127.0.0.1:9", context: { pluginId: "p", tenantId: "" }, token: "phk_x.y" }).get("/api/v1/whoami");
    assert.deepEqual([unreachable.success, unreachable.status], [false, 0]);
  });
});
