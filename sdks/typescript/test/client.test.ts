// Client against a real hub: credentials, gateway calls (proxy and the seed's /call), shared
// data, discovery, events.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Client, ContendedError, PlexhubError, PluginError, SettingError } from "@plexhub/sdk";
import { startCrm, type FakeCrm } from "./fixtures/crm.js";
import { startWorld, type World } from "./fixtures/world.js";

let world: World;
let crm: FakeCrm;
let caller: Client;
let crmClient: Client;

before(async () => {
  world = await startWorld();
  crm = await startCrm(world.url, world.crm.token, world.ports.crm);
  caller = await Client.fromCredential(world.url, world.caller.token);
  crmClient = await Client.fromCredential(world.url, world.crm.token);
});

after(async () => {
  await crm?.stop();
  await world?.stop();
});

describe("credentials", () => {
  test("fromCredential takes tenant and plugin from whoami", async () => {
    assert.equal(caller.tenant, "acme");
    assert.equal(caller.pluginId, "plugin-caller");
    const who = await caller.whoami();
    assert.equal(who.kind, "plugin");
    assert.equal(who.pluginId, "plugin-caller");
  });

  test("a wrong credential is the hub's UNAUTHENTICATED, with status and request id", async () => {
    const error = await Client.fromCredential(world.url, "phk_0000000000000000.nope").catch((e: unknown) => e);
    assert.ok(error instanceof PlexhubError);
    assert.equal(error.code, "UNAUTHENTICATED");
    assert.equal(error.status, 401);
    assert.match(error.requestId ?? "", /^[0-9a-f-]{36}$/);
  });

  test("the admin token is not a plugin credential", async () => {
    await assert.rejects(Client.fromCredential(world.url, world.hub.adminToken), SettingError);
  });

  test("fromEnv needs both settings", () => {
    assert.throws(() => Client.fromEnv({ PLEXHUB_URL: world.url }), /PLEXHUB_TOKEN/);
    const client = Client.fromEnv({ PLEXHUB_URL: `${world.url}/`, PLEXHUB_TOKEN: world.caller.token });
    assert.equal(client.url, world.url);
  });
});

describe("gateway", () => {
  test("GET through the proxy route reaches CRM, signed, with the caller and a user id", async () => {
    const answer = await caller.getJson<{ data: { lastName: string }[]; caller: string; tenant: string; userId: string }>(
      "crm.contacts",
      "/contacts?search=tech",
      { headers: { "x-user-id": "user-7" } },
    );
    assert.deepEqual(answer.data.map((c) => c.lastName), ["Chen", "Johnson"]);
    assert.equal(answer.caller, "plugin-caller");
    assert.equal(answer.tenant, "acme");
    assert.equal(answer.userId, "user-7");
  });

  test("POST sends JSON; the answer's status comes back", async () => {
    const created = await caller.postJson<{ data: { firstName: string; id: string } }>("crm.contacts", "/contacts", { firstName: "Ada", lastName: "Lovelace" });
    assert.equal(created.data.firstName, "Ada");
    const response = await caller.call("crm.contacts", "/contacts", { method: "POST", body: { firstName: "Grace" } });
    assert.equal(response.status, 201);
  });

  test("PUT streams a request body, DELETE passes through", async () => {
    const bytes = new Uint8Array(200_000).fill(7);
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(bytes.subarray(0, 100_000));
        controller.enqueue(bytes.subarray(100_000));
        controller.close();
      },
    });
    const response = await caller.call("crm.contacts", "/contacts/c-1", { method: "PUT", body, headers: { "content-type": "application/octet-stream" } });
    assert.equal(response.status, 200);
    const answer = (await response.json()) as { data: { received: number; contentType: string } };
    assert.equal(answer.data.received, 200_000);
    assert.equal(answer.data.contentType, "application/octet-stream");
    const deleted = await caller.call("crm.contacts", "/contacts/c-1", { method: "DELETE" });
    assert.equal(deleted.status, 204);
  });

  test("the answer streams: its first chunk arrives before the plugin has finished", async () => {
    const response = await caller.call("crm.contacts", "/contacts/tag/stream");
    assert.equal(response.status, 200);
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const first = await reader.read();
    assert.equal(new TextDecoder().decode(first.value), "first\n");
    crm.release();
    let rest = "";
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) rest += new TextDecoder().decode(chunk.value);
    assert.equal(rest, "last\n");
  });

  test("the plugin's own 404 is its answer, not a hub error", async () => {
    const response = await caller.call("crm.contacts", "/contacts/nobody");
    assert.equal(response.status, 404);
    assert.equal(response.headers.get("x-plexhub-error"), null);
    const error = await caller.getJson("crm.contacts", "/contacts/nobody").catch((e: unknown) => e);
    assert.ok(error instanceof PluginError);
    assert.equal(error.status, 404);
    assert.match(error.body, /Contact not found/);
  });

  test("hub refusals carry code, status and details", async () => {
    const denied = await caller.getJson("crm.deals", "/deals").catch((e: unknown) => e);
    assert.ok(denied instanceof PlexhubError);
    assert.equal(denied.code, "PERMISSION_DENIED");
    assert.equal(denied.status, 403);
    assert.deepEqual((denied.details as { missing: string[] }).missing, ["plugin.crm.deals.read"]);
    const unknown = await caller.getJson("crm.contacts", "/nothing/here").catch((e: unknown) => e);
    assert.ok(unknown instanceof PlexhubError);
    assert.equal(unknown.code, "ENDPOINT_NOT_FOUND");
    assert.ok(Array.isArray((unknown.details as { availableEndpoints: string[] }).availableEndpoints));
    const hello = await Client.fromCredential(world.url, world.hello.token);
    const write = await hello.postJson("crm.contacts", "/contacts", {}).catch((e: unknown) => e);
    assert.ok(write instanceof PlexhubError && write.code === "PERMISSION_DENIED");
  });

  test("the seed's /call answers the plugin's status, headers and data", async () => {
    const answer = await caller.callPlugin<{ data: unknown[] }>({ targetPluginId: "plugin-crm", targetServiceName: "crm.contacts", method: "GET", path: "/contacts", query: { search: "smith" } });
    assert.equal(answer.status, 200);
    assert.equal(answer.data.data.length, 1);
    assert.equal(answer.metadata.targetService, "crm.contacts");
    const missing = await caller.callPlugin({ targetPluginId: "plugin-crm", targetServiceName: "crm.contacts", method: "GET", path: "/contacts/nobody" });
    assert.equal(missing.status, 404);
    const refused = await caller.callPlugin({ targetPluginId: "plugin-crm", targetServiceName: "crm.deals", method: "GET", path: "/deals" }).catch((e: unknown) => e);
    assert.ok(refused instanceof PlexhubError);
    assert.equal(refused.code, "PERMISSION_DENIED");
  });
});

describe("shared data", () => {
  test("set and get, with a TTL that expires", async () => {
    const revision = await crmClient.dataSet("cache", "short", { n: 1 }, { ttl: 1 });
    assert.equal(revision, 1);
    const entry = await crmClient.dataGet<{ n: number }>("cache", "short");
    assert.deepEqual(entry?.value, { n: 1 });
    assert.equal(entry?.ownerId, "plugin-crm");
    assert.ok(entry?.expiresAt);
    assert.ok(Date.parse(entry.expiresAt) - Date.now() <= 1_000);
    // Another plugin of the tenant reads it.
    assert.deepEqual((await caller.dataGet("cache", "short"))?.value, { n: 1 });
    await new Promise((done) => setTimeout(done, 1_100));
    assert.equal(await crmClient.dataGet("cache", "short"), undefined);
    // Without a TTL an entry does not expire.
    await crmClient.dataSet("cache", "long", 5);
    assert.equal((await crmClient.dataGet("cache", "long"))?.expiresAt, null);
  });

  test("only the owner writes", async () => {
    await crmClient.dataSet("owned", "k", 1);
    const error = await caller.dataSet("owned", "k", 2).catch((e: unknown) => e);
    assert.ok(error instanceof PlexhubError);
    assert.equal(error.code, "NOT_OWNER");
  });

  test("compare-and-set: create only, replace at a revision, refuse a stale one", async () => {
    assert.equal(await crmClient.dataReplace("cas", "k", "a", undefined), 1);
    assert.equal(await crmClient.dataReplace("cas", "k", "again", undefined), undefined);
    assert.equal(await crmClient.dataReplace("cas", "k", "b", 1), 2);
    assert.equal(await crmClient.dataReplace("cas", "k", "c", 1), undefined);
    assert.equal((await crmClient.dataGet("cas", "k"))?.value, "b");
  });

  test("dataUpdate retries on concurrent writes: ten increments give ten", async () => {
    await Promise.all(Array.from({ length: 10 }, () => crmClient.dataUpdate<number>("counters", "runs", (old) => (old ?? 0) + 1)));
    assert.equal((await crmClient.dataGet("counters", "runs"))?.value, 10);
    await assert.rejects(crmClient.dataUpdate<number>("counters", "busy", async () => {
      await crmClient.dataSet("counters", "busy", Math.random());
      return 0;
    }), ContendedError);
  });

  test("delete, conditional delete", async () => {
    const revision = await crmClient.dataSet("del", "k", 1);
    await assert.rejects(crmClient.dataDelete("del", "k", { ifRevision: revision + 1 }), (e: unknown) => e instanceof PlexhubError && e.code === "PRECONDITION_FAILED" && e.status === 412);
    assert.equal(await crmClient.dataDelete("del", "k", { ifRevision: revision }), true);
    assert.equal(await crmClient.dataDelete("del", "k"), false);
  });

  test("list by prefix across pages, and batch reads", async () => {
    for (const key of ["user.1", "user.2", "user.3", "order.1"]) await crmClient.dataSet("list", key, key);
    const users = await crmClient.dataList("list", { prefix: "user.", values: true, pageSize: 2 });
    assert.deepEqual(users.map((e) => [e.key, e.value]), [["user.1", "user.1"], ["user.2", "user.2"], ["user.3", "user.3"]]);
    const all = await crmClient.dataList("list");
    assert.deepEqual(all.map((e) => e.key), ["order.1", "user.1", "user.2", "user.3"]);
    assert.equal(all[0]?.value, undefined);
    const batch = await crmClient.dataBatchGet("list", ["user.1", "nope"]);
    assert.deepEqual(batch.missing, ["nope"]);
    assert.equal(batch.entries[0]?.value, "user.1");
  });

  test("transactions apply all or nothing", async () => {
    const revisions = await crmClient.dataTransaction([
      { op: "set", namespace: "tx", key: "a", value: 1 },
      { op: "set", namespace: "tx", key: "b", value: 2, ttl: 60 },
      { op: "check", namespace: "tx", key: "a", ifRevision: 1 },
    ]);
    assert.deepEqual(revisions, [1, 1, 1]);
    const error = await crmClient
      .dataTransaction([
        { op: "set", namespace: "tx", key: "a", value: 100 },
        { op: "check", namespace: "tx", key: "b", ifRevision: 7 },
      ])
      .catch((e: unknown) => e);
    assert.ok(error instanceof PlexhubError);
    assert.equal(error.code, "TRANSACTION_FAILED");
    assert.deepEqual(error.details, { index: 1, code: "PRECONDITION_FAILED" });
    assert.equal((await crmClient.dataGet("tx", "a"))?.value, 1);
  });

  test("watch streams set and deleted, filtered by prefix, and resumes after an id", async () => {
    const abort = new AbortController();
    const seen: string[] = [];
    const watching = (async () => {
      for await (const change of caller.dataWatch("watched", { prefix: "p.", signal: abort.signal })) {
        seen.push(`${change.type} ${change.key} ${change.revision}`);
        if (seen.length === 3) abort.abort();
      }
    })();
    await new Promise((done) => setTimeout(done, 300));
    await crmClient.dataSet("watched", "p.one", 1);
    await crmClient.dataSet("watched", "other", 1);
    await crmClient.dataSet("watched", "p.one", 2);
    await crmClient.dataDelete("watched", "p.one");
    await watching;
    assert.deepEqual(seen, ["set p.one 1", "set p.one 2", "deleted p.one 2"]);
    // From the start of the log: the same changes again.
    const again = new AbortController();
    const replayed: string[] = [];
    for await (const change of caller.dataWatch("watched", { prefix: "p.", lastEventId: "0", signal: again.signal })) {
      replayed.push(`${change.type} ${change.key}`);
      if (replayed.length === 3) again.abort();
    }
    assert.deepEqual(replayed, ["set p.one", "set p.one", "deleted p.one"]);
  });
});

describe("discovery", () => {
  test("by name and npm version range", async () => {
    const service = await caller.discover("crm.contacts");
    assert.equal(service?.pluginId, "plugin-crm");
    assert.equal(service?.baseUrl, `http://127.0.0.1:${world.ports.crm}`);
    assert.equal((await caller.discover("crm.contacts", { version: "^1.0.0" }))?.version, "1.0.0");
    assert.equal(await caller.discover("crm.contacts", { version: "^2.0.0" }), undefined);
    assert.equal(await caller.discover("crm.nothing"), undefined);
  });

  test("the cache follows the watch stream: a deactivated plugin disappears", async () => {
    const discovery = caller.discovery();
    try {
      assert.equal(await discovery.ready(), true);
      assert.equal((await discovery.discover("crm.deals"))?.serviceName, "crm.deals");
      await world.admin("POST", "/api/v1/tenants/acme/installations/plugin-crm/deactivate");
      const deadline = Date.now() + 5_000;
      while ((await discovery.discover("crm.deals")) !== undefined) {
        assert.ok(Date.now() < deadline, "the cached answer was never dropped");
        await new Promise((done) => setTimeout(done, 50));
      }
    } finally {
      await world.admin("POST", "/api/v1/tenants/acme/installations/plugin-crm/activate");
      discovery.stop();
    }
    // Activation registers the manifest's services at the installation's baseUrl again.
    assert.equal((await caller.discover("crm.deals"))?.serviceName, "crm.deals");
  });
});

describe("events", () => {
  test("publish is stored once per id, and read back from the stream", async () => {
    const first = await crmClient.publish("plugin.crm.contact.updated", { id: "c-2" }, { id: "evt-1", partitionkey: "c-2" });
    assert.equal(first.duplicate, false);
    const again = await crmClient.publish("plugin.crm.contact.updated", { id: "c-2" }, { id: "evt-1" });
    assert.equal(again.duplicate, true);
    assert.equal(again.seq, first.seq);
    const batch = await crmClient.publishAll([{ type: "plugin.crm.deal.created", data: { id: "d-1" } }, { type: "plugin.crm.deal.updated", data: { id: "d-1" } }]);
    assert.equal(batch.length, 2);
    const abort = new AbortController();
    const types: string[] = [];
    for await (const { event } of caller.eventStream({ pattern: "plugin.crm.#", lastEventId: "0", signal: abort.signal })) {
      types.push(event.type);
      if (event.id === batch[1]?.id) abort.abort();
    }
    assert.ok(types.includes("plugin.crm.contact.updated"));
    assert.deepEqual(types.slice(-2), ["plugin.crm.deal.created", "plugin.crm.deal.updated"]);
  });

  test("a refused publication throws at once", async () => {
    const started = Date.now();
    const error = await caller.publish("plugin.crm.contact.created", {}).catch((e: unknown) => e);
    assert.ok(error instanceof PlexhubError);
    assert.equal(error.code, "TOPIC_NOT_OWNED");
    assert.ok(Date.now() - started < 1_000);
  });

  test("publish retries until the hub accepts, with the same id", async () => {
    let failures = 2;
    const flaky: typeof fetch = (input, init) => {
      if (String(input).endsWith("/api/v1/events") && failures-- > 0) return Promise.reject(new TypeError("fetch failed"));
      return fetch(input, init);
    };
    const client = new Client({ url: world.url, token: world.crm.token, fetch: flaky });
    const published = await client.publish("plugin.crm.deal.deleted", { id: "d-9" });
    assert.equal(failures, -1);
    assert.equal(published.duplicate, false);
    await assert.rejects(
      new Client({ url: world.url, token: world.crm.token, fetch: () => Promise.reject(new TypeError("fetch failed")) }).publish("plugin.crm.deal.deleted", {}, { retryForMs: 300 }),
      /fetch failed/,
    );
  });
});
