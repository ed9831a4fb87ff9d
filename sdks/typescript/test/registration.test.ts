// Registration kept alive: heartbeats, a replica the hub lost registered again, backoff while
// the hub is down and recovery after it restarts (same data directory and port), deregistration
// on stop; discovery's watch reconnecting after the restart.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Client, manifestServices, type Heartbeats } from "@plexhub/sdk";
import { startHub } from "../scripts/hub.mjs";
import { sample } from "./fixtures/manifests.js";
import { startWorld, type World } from "./fixtures/world.js";

let world: World;
let crm: Client;

before(async () => {
  world = await startWorld();
  crm = await Client.fromCredential(world.url, world.crm.token);
});

after(async () => {
  await world?.stop();
});

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await new Promise((done) => setTimeout(done, 25));
  }
}

type Replica = { instanceId: string; status: string; lastSeenAt: string; baseUrl: string };

async function replica(service: string, instance: string): Promise<Replica | undefined> {
  const found = await world.admin<{ instances: Replica[] }>("GET", `/api/v1/services/${service}`, undefined, { "x-tenant-slug": "acme" });
  return found.instances.find((r) => r.instanceId === instance);
}

test("manifestServices reads api.services", () => {
  const services = manifestServices(sample("crm"));
  assert.deepEqual(services.map((s) => s.name), ["crm.contacts", "crm.deals"]);
  assert.equal(services[0]?.endpoints.length, 7);
  assert.deepEqual(manifestServices({}), []);
});

test("heartbeats, re-registration of a lost replica, backoff and recovery across a hub restart, deregistration", async () => {
  const baseUrl = `http://127.0.0.1:${world.ports.crm}`;
  const errors: unknown[] = [];
  const beats: Heartbeats = await crm.keepRegistered(manifestServices(sample("crm")), "replica-2", baseUrl, { everyMs: 1_500, onError: (error) => errors.push(error) });
  const discovery = crm.discovery();
  try {
    assert.equal(beats.stats.registrations, 2);
    assert.equal((await replica("crm.contacts", "replica-2"))?.baseUrl, baseUrl);
    await until("a heartbeat", () => beats.stats.beats >= 2);

    // An operator removes the replica: the next beat registers it again.
    await world.admin("DELETE", "/api/v1/services/crm.contacts/instances/replica-2", undefined, { "x-tenant-slug": "acme" });
    assert.equal(await replica("crm.contacts", "replica-2"), undefined);
    await until("the replica registered again", () => beats.stats.registrations >= 3, 5_000);
    assert.equal((await replica("crm.contacts", "replica-2"))?.status, "HEALTHY");

    // The hub goes away: beats fail and are retried sooner than the 1.5 s interval.
    assert.equal(await discovery.ready(), true);
    const failuresBefore = beats.stats.failures;
    await world.hub.stop();
    await until("two failed rounds of beats", () => beats.stats.failures >= failuresBefore + 4, 6_000);
    assert.equal(discovery.following, false);

    // A new hub process on the same data directory and port: beats resume.
    const restartedAt = Date.now();
    world.hub = await startHub({ dataDir: world.hub.dataDir, port: world.hub.port, args: ["--event-retry-base-ms", "100"] });
    const beatsBefore = beats.stats.beats;
    await until("beats after the restart", () => beats.stats.beats >= beatsBefore + 2, 6_000);
    const revived = await replica("crm.contacts", "replica-2");
    assert.equal(revived?.status, "HEALTHY");
    assert.ok(Date.parse(revived?.lastSeenAt ?? "") >= restartedAt - 1_000);
    assert.ok(errors.length >= 4);
    await until("discovery following again", () => discovery.following, 5_000);
    assert.equal((await discovery.discover("crm.contacts"))?.serviceName, "crm.contacts");
  } finally {
    discovery.stop();
    await beats.stop();
  }
  // Stopped: the replica is deregistered at once; the installation's own replica stays.
  assert.equal(await replica("crm.contacts", "replica-2"), undefined);
  assert.equal(await replica("crm.deals", "replica-2"), undefined);
  assert.ok(await replica("crm.contacts", "default"));
});

test("a service the hub does not know is registered from its spec", async () => {
  const echoLike = { name: "crm.extra", version: "1.0.0", endpoints: [{ method: "GET", path: "/extra" }] };
  const interval = await crm.registerReplica(echoLike, "r1", `http://127.0.0.1:${world.ports.crm}`);
  assert.equal(interval, 15_000);
  assert.equal((await replica("crm.extra", "r1"))?.status, "HEALTHY");
});
