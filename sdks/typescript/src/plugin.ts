// Running a plugin: its installations (one credential per tenant), its HTTP server behind the
// hub's signature check, and its registration kept alive while it serves.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Client } from "./client.js";
import { SettingError } from "./errors.js";
import type { EventRouter } from "./events.js";
import { manifestServices, type Heartbeats } from "./registration.js";
import { Verifier, nodeVerifier, type HubHandler } from "./verify.js";

/**
 * A plugin's installations: one `Client` per tenant the plugin is installed for, each with that
 * installation's credential. A request the hub forwards names its tenant (`hub.tenantSlug`);
 * answer it with that tenant's client, so calls and shared data stay in the tenant.
 */
export class Installations {
  readonly hubUrl: string;
  readonly pluginId: string;
  readonly #byTenant: Map<string, Client>;

  private constructor(hubUrl: string, pluginId: string, byTenant: Map<string, Client>) {
    this.hubUrl = hubUrl;
    this.pluginId = pluginId;
    this.#byTenant = byTenant;
  }

  /** Checks each credential with the hub and files it under its tenant; all must be of one plugin. */
  static async connect(hubUrl: string, tokens: Iterable<string>): Promise<Installations> {
    const byTenant = new Map<string, Client>();
    let pluginId: string | undefined;
    for (const token of tokens) {
      const client = await Client.fromCredential(hubUrl, token);
      if (pluginId !== undefined && pluginId !== client.pluginId) {
        throw new SettingError(`credentials of two plugins given: ${pluginId} and ${client.pluginId}`);
      }
      pluginId = client.pluginId;
      byTenant.set(client.tenant as string, client);
    }
    if (pluginId === undefined) throw new SettingError("a plugin credential is needed");
    return new Installations(hubUrl.replace(/\/+$/, ""), pluginId, byTenant);
  }

  /** From `PLEXHUB_URL` and `PLEXHUB_TOKENS` (comma-separated, one per tenant) or `PLEXHUB_TOKEN`. */
  static fromEnv(env: NodeJS.ProcessEnv = process.env): Promise<Installations> {
    const url = env["PLEXHUB_URL"];
    const tokens = env["PLEXHUB_TOKENS"] ?? env["PLEXHUB_TOKEN"];
    if (!url) throw new SettingError("PLEXHUB_URL is not set");
    if (!tokens) throw new SettingError("PLEXHUB_TOKENS or PLEXHUB_TOKEN is not set");
    return Installations.connect(url, tokens.split(",").map((token) => token.trim()).filter(Boolean));
  }

  /** The client of the installation in `tenant` (slug), if the plugin is installed there. */
  tenant(tenant: string): Client | undefined {
    return this.#byTenant.get(tenant);
  }

  /** The tenants (slugs), sorted. */
  tenants(): string[] {
    return [...this.#byTenant.keys()].sort();
  }

  /** Every installation's client. */
  clients(): Client[] {
    return this.tenants().map((tenant) => this.#byTenant.get(tenant) as Client);
  }
}

/** How `serve` runs a plugin. */
export interface ServeOptions {
  /** The plugin's manifest: its `api.services` are registered at this replica. */
  manifest: unknown;
  installations: Installations;
  /**
   * Handles the requests the hub signed (anything else gets 401 before it runs). Or give
   * `listener` to route yourself (an Express or Fastify app, with their verifier middleware).
   */
  handler?: HubHandler;
  /** A request listener that does its own verification (e.g. an Express app using `expressVerifier`). */
  listener?: (req: IncomingMessage, res: ServerResponse) => void;
  /** Event deliveries: `POST path` goes to the router (the manifest's subscription `endpoint`). */
  events?: { path: string; router: EventRouter };
  /** Verifier to use (default: one for `installations`, created here). */
  verifier?: Verifier;
  /** Port to listen on (default 0: any free port) and host (default 127.0.0.1). */
  port?: number;
  host?: string;
  /** The URL the hub reaches this replica at (default `http://<host>:<port>`). */
  publicUrl?: string;
  /** The replica's id in the registry (default `default`, the replica activation registers). */
  instance?: string;
  /** Heartbeat period in ms (default: the hub's interval). */
  heartbeatEveryMs?: number;
  /** Stop cleanly (deregister, close) on SIGTERM and SIGINT (default false: opt in). */
  handleSignals?: boolean;
  /** Called with each failed beat (default: a line on stderr). */
  onHeartbeatError?: (error: unknown, service: string) => void;
}

/** A plugin being served; `stop()` ends it. */
export class RunningPlugin {
  #stopping: Promise<void> | undefined;
  #signals: (() => void) | undefined;

  constructor(
    /** The URL the hub reaches this replica at. */
    readonly url: string,
    readonly server: Server,
    readonly verifier: Verifier,
    readonly heartbeats: Heartbeats[],
  ) {}

  /** @internal */
  onSignals(remove: () => void): void {
    this.#signals = remove;
  }

  /**
   * Stops the heartbeats and deregisters this replica (unless `deregister: false`), then the
   * server: requests in flight finish, new connections are refused.
   */
  stop(options: { deregister?: boolean } = {}): Promise<void> {
    this.#stopping ??= (async () => {
      this.#signals?.();
      await Promise.all(this.heartbeats.map((beats) => beats.stop(options)));
      await new Promise<void>((done) => {
        this.server.close(() => done());
        this.server.closeIdleConnections();
      });
    })();
    return this.#stopping;
  }
}

/**
 * Serves a plugin: `handler` behind the hub's signature check (or your own `listener`), event
 * deliveries at `events.path`, and the manifest's services registered at this replica for every
 * installation, kept alive by heartbeats until `stop()`.
 */
export async function serve(options: ServeOptions): Promise<RunningPlugin> {
  if (!options.handler && !options.listener && !options.events) throw new SettingError("serve needs a handler, a listener or events");
  const verifier = options.verifier ?? (await Verifier.forInstallations(options.installations));
  const verified = options.handler ? nodeVerifier(verifier, options.handler) : undefined;
  const deliveries = options.events?.router.nodeListener(verifier);
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (deliveries && req.method === "POST" && path === options.events?.path) return deliveries(req, res);
    if (verified) return verified(req, res);
    if (options.listener) return options.listener(req, res);
    res.writeHead(404, { "content-type": "application/json" });
    res.end(JSON.stringify({ error: { code: "NOT_FOUND", message: "no such route" } }));
  });
  const host = options.host ?? "127.0.0.1";
  await new Promise<void>((done, fail) => {
    server.once("error", fail);
    server.listen(options.port ?? 0, host, () => done());
  });
  const { port } = server.address() as AddressInfo;
  const url = options.publicUrl ?? `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
  const running = new RunningPlugin(url, server, verifier, []);
  const services = manifestServices(options.manifest);
  try {
    for (const client of options.installations.clients()) {
      running.heartbeats.push(
        await client.keepRegistered(services, options.instance ?? "default", url, {
          ...(options.heartbeatEveryMs === undefined ? {} : { everyMs: options.heartbeatEveryMs }),
          ...(options.onHeartbeatError ? { onError: options.onHeartbeatError } : {}),
        }),
      );
    }
  } catch (error) {
    await running.stop({ deregister: false });
    throw error;
  }
  if (options.handleSignals) {
    const stop = () => void running.stop().then(() => process.exit(0));
    process.once("SIGTERM", stop);
    process.once("SIGINT", stop);
    running.onSignals(() => {
      process.off("SIGTERM", stop);
      process.off("SIGINT", stop);
    });
  }
  return running;
}
