// {{name}}: a plexhub plugin made by `plexhub new plugin`. At start it calls CRM through the hub;
// then it serves GET /hello behind the hub's signature check (only requests the hub forwarded and
// signed reach the handler) and keeps its service registered with heartbeats, until SIGTERM.
//
// Environment: PLEXHUB_URL (e.g. http://127.0.0.1:4000), PLEXHUB_TOKEN (the credential
// `plexhub install {{plugin_id}} …` printed; or PLEXHUB_TOKENS, one per tenant), PORT (default
// {{port}}) and PUBLIC_URL (how the hub reaches it; default http://127.0.0.1:<PORT>).
import { readFileSync } from "node:fs";
import { Client, Installations, serve } from "@plexhub/sdk";

/** How many contacts CRM has. Through the gateway: the hub checks this plugin's manifest (its
 * dependency on CRM) and grants, then signs the request it forwards to CRM. */
async function crmContacts(hub: Client): Promise<number> {
  const answer = await hub.getJson<{ total?: number }>("crm.contacts", "/contacts?limit=1");
  return answer.total ?? 0;
}

const installations = await Installations.fromEnv();
for (const tenant of installations.tenants()) {
  const hub = installations.tenant(tenant);
  if (hub) console.log(`{{name}}: CRM has ${await crmContacts(hub)} contacts in ${tenant}`);
}
const manifest: unknown = JSON.parse(readFileSync(new URL("../manifest.json", import.meta.url), "utf8"));
const plugin = await serve({
  manifest,
  installations,
  port: Number(process.env["PORT"] ?? "{{port}}"),
  ...(process.env["PUBLIC_URL"] ? { publicUrl: process.env["PUBLIC_URL"] } : {}),
  // Runs only for requests the hub signed; anything else gets 401 UNSIGNED_REQUEST.
  handler: async (req, res, hub) => {
    if (req.method !== "GET" || req.url?.split("?")[0] !== "/hello") {
      res.writeHead(404, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: "no such route" }));
      return;
    }
    const client = installations.tenant(hub.tenantSlug);
    const crmContactsCount = client ? await crmContacts(client).catch(() => null) : null;
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ hello: hub.caller, tenant: hub.tenantSlug, crmContacts: crmContactsCount }));
  },
  handleSignals: true,
});
console.log(`{{name}}: serving on ${plugin.url}`);
