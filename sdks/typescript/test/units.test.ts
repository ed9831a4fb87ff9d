// Pure pieces: event patterns as the hub matches them, the Server-Sent Events reader, errors
// read from both of the hub's shapes.
import assert from "node:assert/strict";
import { test } from "node:test";
import { EventRouter, PlexhubError, isTargetUnavailable, patternMatches, readSse } from "@plexhub/sdk";

test("patterns: * one segment, a final # one or more", () => {
  assert.ok(patternMatches("plugin.crm.contact.*", "plugin.crm.contact.created"));
  assert.ok(!patternMatches("plugin.crm.contact.*", "plugin.crm.contact"));
  assert.ok(!patternMatches("plugin.crm.contact.*", "plugin.crm.contact.a.b"));
  assert.ok(patternMatches("plugin.crm.#", "plugin.crm.deal.updated"));
  assert.ok(!patternMatches("plugin.crm.#", "plugin.crm"));
  assert.ok(patternMatches("plexhub.service.registered", "plexhub.service.registered"));
  assert.throws(() => new EventRouter().on("plugin.#.x", () => undefined), /invalid event pattern/);
  assert.throws(() => new EventRouter().on("Plugin.X", () => undefined), /invalid event pattern/);
});

test("Server-Sent Events split across chunks, comments, multi-line data, CRLF", async () => {
  const parts = ["id: 7\nevent: set\nda", "ta: {\"key\":\"a\"}\n\n: keep-alive\n\n", "data: one\r\ndata: two\r\n\r\n"];
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const part of parts) controller.enqueue(new TextEncoder().encode(part));
      controller.close();
    },
  });
  const events = [];
  for await (const event of readSse(body)) events.push(event);
  assert.deepEqual(events, [
    { id: "7", event: "set", data: '{"key":"a"}' },
    { id: undefined, event: "message", data: "one\ntwo" },
  ]);
});

test("target-unavailable codes", () => {
  assert.ok(isTargetUnavailable("UPSTREAM_UNREACHABLE"));
  assert.ok(isTargetUnavailable("SERVICE_UNAVAILABLE"));
  assert.ok(!isTargetUnavailable("PERMISSION_DENIED"));
  assert.ok(new PlexhubError({ code: "UPSTREAM_TIMEOUT", status: 504, message: "slow" }).targetUnavailable);
  assert.equal(new PlexhubError({ code: "X", status: 400, message: "m" }).message, "X (400): m");
});
