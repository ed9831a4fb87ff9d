// Request verification against the hub's real signatures: HMAC (v2) and Ed25519 (v1), refusal of
// unsigned, tampered, expired, replayed and wrongly keyed requests, a secret rotation, the
// middleware for Node http, Express and Fastify, and event deliveries.
import assert from "node:assert/strict";
import { createHmac, createPrivateKey, generateKeyPairSync, randomBytes, sign } from "node:crypto";
import { readFileSync } from "node:fs";
import type { IncomingHttpHeaders } from "node:http";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import express from "express";
import Fastify from "fastify";
import { Client, EventRouter, Installations, Verifier, expressVerifier, fastifyVerifier, serve, type Delivery, type Event, type Heartbeats, type HubRequest, type RunningPlugin } from "@plexhub/sdk";
import { startCrm, type FakeCrm } from "./fixtures/crm.js";
import { echo } from "./fixtures/manifests.js";
import { startWorld, type World } from "./fixtures/world.js";

let world: World;
let crm: FakeCrm;
let caller: Client;
let echoPlugin: RunningPlugin;
let verifier: Verifier;
let registrations: Heartbeats[] = [];
let closers: (() => Promise<unknown>)[] = [];
const echoSeen: { url: string; headers: IncomingHttpHeaders; hub: HubRequest }[] = [];
const deliveries: { event: Event; delivery: Delivery }[] = [];
let failNextDelivery = true;

const spec = (name: string) => {
  const service = echo.api.services.find((s) => s.name === name);
  assert.ok(service);
  return { name, version: service.version, endpoints: service.endpoints };
};

before(async () => {
  world = await startWorld();
  crm = await startCrm(world.url, world.crm.token, world.ports.crm);
  caller = await Client.fromCredential(world.url, world.caller.token);
  const installations = await Installations.connect(world.url, [world.echo.token]);
  verifier = await Verifier.forInstallations(installations);
  const router = new EventRouter().on("plugin.crm.contact.*", (event, delivery) => {
    deliveries.push({ event, delivery });
    if (failNextDelivery) {
      failNextDelivery = false;
      throw new Error("not now");
    }
  });
  echoPlugin = await serve({
    manifest: { ...echo, api: { ...echo.api, services: echo.api.services.filter((s) => s.name === "echo.node") } },
    installations,
    verifier,
    port: world.ports.echoNode,
    heartbeatEveryMs: 1_000,
    events: { path: "/events", router },
    handler: (req, res, hub) => {
      echoSeen.push({ url: req.url ?? "", headers: req.headers, hub });
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ via: "node", hub }));
    },
  });
  const client = installations.tenant("acme") as Client;

  const app = express();
  app.use(expressVerifier(verifier));
  app.use((req, res) => {
    res.json({ via: "express", hub: (req as unknown as { hub: HubRequest }).hub, locals: res.locals["hub"] });
  });
  const server = app.listen(world.ports.echoExpress, "127.0.0.1");
  await new Promise((done) => server.once("listening", done));
  closers.push(() => new Promise((done) => server.close(done)));
  registrations.push(await client.keepRegistered([spec("echo.express")], "default", `http://127.0.0.1:${world.ports.echoExpress}`, { everyMs: 1_000 }));

  const fastify = Fastify();
  fastify.decorateRequest("hub", null);
  fastify.addHook("onRequest", fastifyVerifier(verifier));
  fastify.all("/*", async (request) => ({ via: "fastify", hub: (request as unknown as { hub: HubRequest }).hub }));
  await fastify.listen({ port: world.ports.echoFastify, host: "127.0.0.1" });
  closers.push(() => fastify.close());
  registrations.push(await client.keepRegistered([spec("echo.fastify")], "default", `http://127.0.0.1:${world.ports.echoFastify}`, { everyMs: 1_000 }));
});

after(async () => {
  for (const beats of registrations) await beats.stop({ deregister: false });
  for (const close of closers) await close();
  await echoPlugin?.stop();
  await crm?.stop();
  await world?.stop();
});

/** A request straight to a plugin server, bypassing the hub. */
async function direct(port: number, url: string, headers: Record<string, string>, method = "GET"): Promise<{ status: number; body: any }> {
  const response = await fetch(`http://127.0.0.1:${port}${url}`, { method, headers });
  return { status: response.status, body: await response.json() };
}

function plain(headers: IncomingHttpHeaders): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const name of ["x-plexhub-signature", "x-tenant-id", "x-tenant-slug", "x-caller-plugin-id", "x-request-id", "x-user-id", "x-workspace-id"]) {
    const value = headers[name];
    if (typeof value === "string") kept[name] = value;
  }
  return kept;
}

function message(tag: string, method: string, path: string, query: string, h: Record<string, string>, ts: string): string {
  return [tag, method, path, query, h["x-tenant-id"] ?? "", h["x-caller-plugin-id"] ?? "", h["x-request-id"] ?? "", h["x-user-id"] ?? "", h["x-workspace-id"] ?? "", ts].join("\n");
}

function hmacHeader(keyId: string, secret: Buffer, path: string, h: Record<string, string>, ts: number): string {
  const mac = createHmac("sha256", secret).update(message("plexhub-v2", "GET", path, "", h, String(ts))).digest("base64url");
  return `v2;keyId=${keyId};ts=${ts};sig=${mac}`;
}

function ed25519Header(keyId: string, seed: Buffer, path: string, h: Record<string, string>, ts: number): string {
  const key = createPrivateKey({ key: Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seed]), format: "der", type: "pkcs8" });
  const signature = sign(null, Buffer.from(message("plexhub-v1", "GET", path, "", h, String(ts))), key).toString("base64url");
  return `v1;keyId=${keyId};ts=${ts};sig=${signature}`;
}

describe("HMAC (v2), the hub's default", () => {
  test("a request through the hub is accepted with its tenant, caller and user", async () => {
    const answer = await caller.getJson<{ via: string; hub: HubRequest }>("echo.node", "/things/1?x=1", { headers: { "x-user-id": "u-1", "x-workspace-id": "w-1" } });
    assert.equal(answer.via, "node");
    assert.equal(answer.hub.tenantSlug, "acme");
    assert.equal(answer.hub.caller, "plugin-caller");
    assert.equal(answer.hub.userId, "u-1");
    assert.equal(answer.hub.workspaceId, "w-1");
    assert.match(answer.hub.tenantId, /^[0-9a-f-]{36}$/);
    assert.match(echoSeen.at(-1)?.headers["x-plexhub-signature"] as string, /^v2;keyId=hs_/);
  });

  test("unsigned, replayed, tampered, expired and wrongly keyed requests are refused", async () => {
    await caller.getJson("echo.node", "/things/2");
    const captured = echoSeen.at(-1);
    assert.ok(captured);
    const headers = plain(captured.headers);
    const unsigned = await direct(world.ports.echoNode, "/things/2", { ...headers, "x-plexhub-signature": "" });
    assert.deepEqual([unsigned.status, unsigned.body.error.code], [401, "UNSIGNED_REQUEST"]);

    const replayed = await direct(world.ports.echoNode, captured.url, headers);
    assert.deepEqual([replayed.status, replayed.body.error.code], [401, "REPLAYED_REQUEST"]);

    const otherPath = await direct(world.ports.echoNode, "/things/3", headers);
    assert.deepEqual([otherPath.status, otherPath.body.error.code], [401, "BAD_SIGNATURE"]);
    assert.match(otherPath.body.error.message, /does not match/);
    const otherUser = await direct(world.ports.echoNode, captured.url, { ...headers, "x-user-id": "admin" });
    assert.deepEqual([otherUser.status, otherUser.body.error.code], [401, "BAD_SIGNATURE"]);

    // Signed with the installation's real secret: fresh is accepted, 6 minutes old is not.
    const secret = Buffer.from(world.echo.signingSecret.secret, "base64url");
    const keyId = world.echo.signingSecret.keyId;
    const fresh = await direct(world.ports.echoNode, "/own", { ...headers, "x-plexhub-signature": hmacHeader(keyId, secret, "/own", headers, Date.now()) });
    assert.equal(fresh.status, 200);
    const expired = await direct(world.ports.echoNode, "/own", { ...headers, "x-plexhub-signature": hmacHeader(keyId, secret, "/own", headers, Date.now() - 6 * 60_000) });
    assert.deepEqual([expired.status, expired.body.error.code], [401, "BAD_SIGNATURE"]);
    assert.match(expired.body.error.message, /too old/);
    const future = await direct(world.ports.echoNode, "/own", { ...headers, "x-plexhub-signature": hmacHeader(keyId, secret, "/own", headers, Date.now() + 6 * 60_000) });
    assert.equal(future.body.error.code, "BAD_SIGNATURE");

    const wrongSecret = await direct(world.ports.echoNode, "/own", { ...headers, "x-plexhub-signature": hmacHeader(keyId, randomBytes(32), "/own", headers, Date.now()) });
    assert.deepEqual([wrongSecret.status, wrongSecret.body.error.code], [401, "BAD_SIGNATURE"]);
    const unknownKey = await direct(world.ports.echoNode, "/own", { ...headers, "x-plexhub-signature": hmacHeader("hs_0000000000000000", secret, "/own", headers, Date.now()) });
    assert.equal(unknownKey.body.error.code, "BAD_SIGNATURE");
    assert.match(unknownKey.body.error.message, /unknown key/);
    const garbage = await direct(world.ports.echoNode, "/own", { ...headers, "x-plexhub-signature": "v2;keyId=a,b;ts=1;sig=x" });
    assert.match(garbage.body.error.message, /well-formed/);
  });

  test("a rotated secret: the overlap's two MACs are accepted, then the new key alone after a refresh", async () => {
    const rotated = await world.admin<{ signingSecret?: { keyId: string; secret: string }; keyId?: string; secret?: string }>("POST", "/api/v1/tenants/acme/installations/plugin-echo/signing-secret/rotate");
    const fresh = rotated.signingSecret ?? (rotated as { keyId: string; secret: string });
    assert.notEqual(fresh.keyId, world.echo.signingSecret.keyId);
    await caller.getJson("echo.node", "/after-rotation");
    const header = echoSeen.at(-1)?.headers["x-plexhub-signature"] as string;
    assert.match(header, new RegExp(`keyId=${fresh.keyId},${world.echo.signingSecret.keyId};`));
    // Only the new secret: this verifier never saw it, reads the secrets again and accepts.
    const headers = plain(echoSeen.at(-1)?.headers ?? {});
    const onlyNew = hmacHeader(fresh.keyId, Buffer.from(fresh.secret, "base64url"), "/new-only", headers, Date.now());
    const answer = await direct(world.ports.echoNode, "/new-only", { ...headers, "x-plexhub-signature": onlyNew });
    assert.equal(answer.status, 200);
  });
});

describe("Ed25519 (v1)", () => {
  test("the hub's signature is accepted; replayed, tampered, expired and foreign-key ones are not", async () => {
    await caller.getJson("crm.contacts", "/contacts");
    const captured = crm.seen.at(-1);
    assert.ok(captured);
    const headers = plain(captured.headers);
    assert.match(headers["x-plexhub-signature"] ?? "", /^v1;keyId=[0-9a-f]{16};/);
    assert.equal(captured.hub.caller, "plugin-caller");

    const replayed = await direct(world.ports.crm, captured.url, headers);
    assert.deepEqual([replayed.status, replayed.body.error.code], [401, "REPLAYED_REQUEST"]);
    const tampered = await direct(world.ports.crm, "/contacts?search=x", headers);
    assert.equal(tampered.body.error.code, "BAD_SIGNATURE");

    const keyId = /keyId=([0-9a-f]+)/.exec(headers["x-plexhub-signature"] ?? "")?.[1] ?? "";
    const seed = Buffer.from(readFileSync(join(world.hub.dataDir, "signing-keys"), "utf8").trim().split("\n")[0] ?? "", "base64url");
    const own = await direct(world.ports.crm, "/contacts", { ...headers, "x-plexhub-signature": ed25519Header(keyId, seed, "/contacts", headers, Date.now()) });
    assert.equal(own.status, 200);
    const expired = await direct(world.ports.crm, "/contacts", { ...headers, "x-plexhub-signature": ed25519Header(keyId, seed, "/contacts", headers, Date.now() - 10 * 60_000) });
    assert.deepEqual([expired.status, expired.body.error.code], [401, "BAD_SIGNATURE"]);
    assert.match(expired.body.error.message, /too old/);
    const foreign = generateKeyPairSync("ed25519").privateKey.export({ format: "der", type: "pkcs8" }).subarray(16);
    const wrongKey = await direct(world.ports.crm, "/contacts", { ...headers, "x-plexhub-signature": ed25519Header(keyId, foreign, "/contacts", headers, Date.now()) });
    assert.deepEqual([wrongKey.status, wrongKey.body.error.code], [401, "BAD_SIGNATURE"]);
    assert.match(wrongKey.body.error.message, /does not match/);
  });

  test("Verifier.fetch trusts the published keys only; fromKeys works offline", async () => {
    const keysOnly = await Verifier.fetch(world.url);
    await caller.getJson("crm.contacts", "/contacts?search=chen");
    const captured = crm.seen.at(-1);
    assert.ok(captured);
    const hub = await keysOnly.verify({ method: "GET", url: captured.url, headers: captured.headers });
    assert.equal(hub.tenantSlug, "acme");
    const offline = Verifier.fromKeys({ secrets: [world.echo.signingSecret] });
    await assert.rejects(offline.verify({ method: "GET", url: captured.url, headers: captured.headers }), { code: "BAD_SIGNATURE" });
  });
});

describe("middleware", () => {
  test("Express: signed requests go on with req.hub, others get 401", async () => {
    const answer = await caller.getJson<{ via: string; hub: HubRequest; locals: HubRequest }>("echo.express", "/anything?q=1");
    assert.equal(answer.via, "express");
    assert.equal(answer.hub.caller, "plugin-caller");
    assert.deepEqual(answer.locals, answer.hub);
    const unsigned = await direct(world.ports.echoExpress, "/anything", {});
    assert.deepEqual([unsigned.status, unsigned.body.error.code], [401, "UNSIGNED_REQUEST"]);
  });

  test("Fastify: signed requests go on with request.hub, others get 401", async () => {
    const response = await caller.call("echo.fastify", "/deep/path?q=2", { method: "POST", body: { a: 1 } });
    const answer = (await response.json()) as { via: string; hub: HubRequest };
    assert.equal(answer.via, "fastify");
    assert.equal(answer.hub.tenantSlug, "acme");
    const unsigned = await direct(world.ports.echoFastify, "/deep/path", { "x-plexhub-signature": "v9;nonsense" });
    assert.deepEqual([unsigned.status, unsigned.body.error.code], [401, "BAD_SIGNATURE"]);
  });
});

describe("event deliveries", () => {
  test("verified, dispatched by pattern, and a thrown handler error means the hub retries", async () => {
    await caller.postJson("crm.contacts", "/contacts", { firstName: "Evt" });
    const deadline = Date.now() + 10_000;
    while (deliveries.length < 2) {
      assert.ok(Date.now() < deadline, `deliveries: ${deliveries.length}`);
      await new Promise((done) => setTimeout(done, 50));
    }
    const [first, second] = deliveries;
    assert.equal(first?.event.type, "plugin.crm.contact.created");
    assert.equal(second?.event.id, first?.event.id);
    assert.deepEqual([first?.delivery.attempt, second?.delivery.attempt], [1, 2]);
    assert.equal(second?.delivery.caller, "plugin-crm");
    assert.equal(second?.delivery.tenantSlug, "acme");
    assert.equal(second?.event.tenantid, second?.delivery.tenantId);
    assert.ok(second?.delivery.subscription);
    const unsigned = await direct(world.ports.echoNode, "/events", { "content-type": "application/json" }, "POST");
    assert.deepEqual([unsigned.status, unsigned.body.error.code], [401, "UNSIGNED_REQUEST"]);
    // The hub counts the delivery once it has the acknowledgement (just after the handler ran).
    for (;;) {
      const { subscriptions } = await caller.send<{ subscriptions: { delivered: number }[] }>("GET", "/api/v1/subscriptions");
      if (subscriptions.some((s) => s.delivered >= 1)) break;
      assert.ok(Date.now() < deadline, "the delivery was never counted as delivered");
      await new Promise((done) => setTimeout(done, 50));
    }
  });
});
