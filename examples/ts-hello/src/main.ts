// plexhub-ts-hello: the TypeScript twin of examples/hello. It lists CRM's contacts (through the
// gateway, as plugin-ts-hello, in the tenant its credential belongs to) and counts its runs in
// the tenant's shared data. With PORT set it then serves, behind the hub's signature check, the
// last greetings (GET /greetings) and CRM's contact events (POST /events), until SIGTERM.
//
// Environment: PLEXHUB_URL (e.g. http://127.0.0.1:4000), PLEXHUB_TOKEN (the credential
// `plexhub install plugin-ts-hello …` printed), and optionally PORT and PUBLIC_URL.
import { readFileSync } from "node:fs";
import { Client, EventRouter, Installations, PlexhubError, isTargetUnavailable, serve } from "@plexhub/sdk";

/** The part of CRM's `GET /contacts` answer this plugin reads. */
interface Contacts {
  data: { firstName: string; lastName: string; company: string | null }[];
  total: number;
}

async function greet(hub: Client): Promise<string[]> {
  // Through the gateway: the hub checks this plugin's manifest and grants, then signs the
  // request it forwards to CRM with the tenant and the caller.
  const contacts = await hub.getJson<Contacts>("crm.contacts", "/contacts?sortBy=lastName&sortOrder=asc");
  const greeted: string[] = [];
  for (const contact of contacts.data) {
    console.log(`Hello, ${contact.firstName} ${contact.lastName} (${contact.company ?? "no company"})!`);
    greeted.push(`${contact.firstName} ${contact.lastName}`);
  }
  // Shared data: this plugin owns the key; compare-and-set retries on concurrent runs.
  const revision = await hub.dataUpdate<number>("hello", "runs", (old) => (old ?? 0) + 1);
  console.log(`${contacts.total} contacts greeted; run number ${revision}`);
  return greeted;
}

async function main(): Promise<number> {
  let greeted: string[];
  try {
    greeted = await greet(Client.fromEnv());
  } catch (error) {
    if (error instanceof PlexhubError && error.code === "PERMISSION_DENIED") {
      console.error(`plexhub-ts-hello: grant it the permission first: ${error.message}`);
    } else if (error instanceof PlexhubError && isTargetUnavailable(error.code)) {
      console.error(`plexhub-ts-hello: CRM is not reachable right now: ${error.message}`);
    } else {
      console.error(`plexhub-ts-hello: ${error instanceof Error ? error.message : error}`);
    }
    return 1;
  }
  if (!process.env["PORT"]) return 0;
  await serveGreetings(greeted, Number(process.env["PORT"]));
  return 0;
}

async function serveGreetings(greeted: string[], port: number): Promise<void> {
  const manifest: unknown = JSON.parse(readFileSync(new URL("../manifest.json", import.meta.url), "utf8"));
  const installations = await Installations.fromEnv();
  // Deliveries are signed like calls; a handler that throws makes the hub deliver again later.
  const events = new EventRouter().on("plugin.crm.contact.*", (event, delivery) => {
    const contact = event.data as { firstName?: string; lastName?: string };
    console.log(`CRM says ${event.type} in ${delivery.tenantSlug}: ${contact.firstName} ${contact.lastName}`);
  });
  const plugin = await serve({
    manifest,
    installations,
    port,
    ...(process.env["PUBLIC_URL"] ? { publicUrl: process.env["PUBLIC_URL"] } : {}),
    events: { path: "/events", router: events },
    // Runs only for requests the hub signed; anything else gets 401 UNSIGNED_REQUEST.
    handler: (req, res, hub) => {
      const found = req.method === "GET" && req.url?.split("?")[0] === "/greetings";
      res.writeHead(found ? 200 : 404, { "content-type": "application/json" });
      res.end(JSON.stringify(found ? { greeted, tenant: hub.tenantSlug, caller: hub.caller } : { error: "no such route" }));
    },
    handleSignals: true,
  });
  console.log(`plexhub-ts-hello serving on ${plugin.url} for ${installations.tenants().join(", ")}`);
}

process.exitCode = await main();
