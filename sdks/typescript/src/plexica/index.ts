/**
 * `@plexhub/sdk/plexica`: the original Plexica SDK's plugin classes (`PlexicaPlugin`,
 * `ApiClient`, `ServiceClient`, `SharedDataClient`), same names, methods and answers, made to
 * work with plexhub: they send the installation's credential (`token`, the one new option, or
 * `PLEXHUB_TOKEN`), take the tenant from the credential instead of sending an empty or
 * mistaken `X-Tenant-Slug`, and keep the hub's error `code`, `details` and request id in every
 * `ApiResponse`. A plugin moves over by changing its import and adding `token`.
 */
import { randomUUID } from "node:crypto";
import { errorFromBody } from "../errors.js";

// ---------------------------------------------------------------------------------------------
// Types (the original's, plus what plexhub adds)
// ---------------------------------------------------------------------------------------------

/** Runtime context of a plugin: its id and tenant. */
export interface PluginContext {
  pluginId: string;
  /** The tenant: with plexhub, the credential's tenant slug (the original sent it as `X-Tenant-Slug`). */
  tenantId: string;
  /** The tenant's slug, once resolved from the credential. */
  tenantSlug?: string;
  workspaceId?: string;
  userId?: string;
}

/** Configuration of a `PlexicaPlugin`. */
export interface PluginConfig {
  pluginId: string;
  name: string;
  version: string;
  /** The hub's base URL (e.g. `http://localhost:4000`). */
  apiBaseUrl: string;
  /** The installation's credential `phk_…` (default: `PLEXHUB_TOKEN`). New with plexhub. */
  token?: string;
  /** Beat for the registered services while started (default true). New with plexhub. */
  heartbeat?: boolean;
  eventBusBrokers?: string[];
  port?: number;
  host?: string;
}

export interface ServiceEndpoint {
  method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  path: string;
  description?: string;
  permissions?: string[];
}

export interface ServiceDefinition {
  name: string;
  version: string;
  baseUrl: string;
  description?: string;
  endpoints: ServiceEndpoint[];
  metadata?: Record<string, unknown>;
}

/** A discovered service: the hub's fields, plus the original's `name` and `health` aliases. */
export interface DiscoveredService {
  pluginId: string;
  /** The original's name for `serviceName`. */
  name: string;
  serviceName: string;
  version: string;
  baseUrl: string;
  endpoints: ServiceEndpoint[];
  /** The original's name for `status`. */
  health: "HEALTHY" | "DEGRADED" | "UNAVAILABLE";
  status: "HEALTHY" | "DEGRADED" | "UNAVAILABLE";
  metadata?: Record<string, unknown>;
  id?: string;
}

export interface ApiRequestOptions {
  method?: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  headers?: Record<string, string>;
  body?: unknown;
  params?: Record<string, string | number | boolean | undefined>;
  timeout?: number;
}

/** Typed API response; never thrown. */
export interface ApiResponse<T = unknown> {
  success: boolean;
  data?: T;
  total?: number;
  /** Error message (on failure). */
  error?: string;
  message?: string;
  status: number;
  /** The hub's stable error code (`PERMISSION_DENIED`…). New with plexhub. */
  code?: string;
  /** The hub's error details. New with plexhub. */
  details?: unknown;
  /** The hub's `X-Request-Id`. New with plexhub. */
  requestId?: string;
}

export interface SetSharedDataOptions {
  ttl?: number;
  isPublic?: boolean;
}

export interface PluginApiCallRequest {
  targetPluginId: string;
  serviceName: string;
  method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  path: string;
  body?: unknown;
  params?: Record<string, string | number | boolean>;
  headers?: Record<string, string>;
}

export interface PublishEventOptions {
  workspaceId?: string;
  correlationId?: string;
  causationId?: string;
  /** Events with one key reach each subscriber in order. New with plexhub. */
  partitionKey?: string;
}

// ---------------------------------------------------------------------------------------------
// ApiClient
// ---------------------------------------------------------------------------------------------

export interface ApiClientConfig {
  baseUrl: string;
  context: PluginContext;
  defaultTimeout?: number;
  defaultHeaders?: Record<string, string>;
  /** The installation's credential (default: `PLEXHUB_TOKEN`). New with plexhub. */
  token?: string;
}

interface Identity {
  kind: string;
  tenant?: string | null;
  pluginId?: string | null;
}

/** HTTP client for the hub, with the plugin's identity headers; answers `ApiResponse`, never throws. */
export class ApiClient {
  private readonly baseUrl: string;
  private readonly context: PluginContext;
  private readonly defaultTimeout: number;
  private readonly defaultHeaders: Record<string, string>;
  private readonly token: string | undefined;
  private identity: Promise<Identity> | undefined;

  constructor(config: ApiClientConfig) {
    this.baseUrl = config.baseUrl.replace(/\/+$/, "");
    this.context = config.context;
    this.defaultTimeout = config.defaultTimeout ?? 30_000;
    this.defaultHeaders = config.defaultHeaders ?? {};
    this.token = config.token ?? process.env["PLEXHUB_TOKEN"];
  }

  /**
   * Who the credential belongs to (`GET /api/v1/whoami`, asked once). Its tenant is the one the
   * client sends; a refused credential answers with the hub's code.
   */
  async resolveIdentity(): Promise<ApiResponse<Identity>> {
    if (!this.token) {
      return { success: false, status: 0, error: "no credential: set the token option or PLEXHUB_TOKEN", code: "UNAUTHENTICATED" };
    }
    this.identity ??= this.fetchJson<Identity>("/api/v1/whoami", { method: "GET", headers: { authorization: `Bearer ${this.token}` } }).then((answer) => {
      if (!answer.success || !answer.data) {
        this.identity = undefined;
        throw answer;
      }
      return answer.data;
    });
    try {
      return { success: true, status: 200, data: await this.identity };
    } catch (failure) {
      return failure as ApiResponse<Identity>;
    }
  }

  get<T = unknown>(path: string, options?: Omit<ApiRequestOptions, "method" | "body">): Promise<ApiResponse<T>> {
    return this.request<T>(path, { ...options, method: "GET" });
  }

  post<T = unknown>(path: string, body?: unknown, options?: Omit<ApiRequestOptions, "method" | "body">): Promise<ApiResponse<T>> {
    return this.request<T>(path, { ...options, method: "POST", body });
  }

  put<T = unknown>(path: string, body?: unknown, options?: Omit<ApiRequestOptions, "method" | "body">): Promise<ApiResponse<T>> {
    return this.request<T>(path, { ...options, method: "PUT", body });
  }

  patch<T = unknown>(path: string, body?: unknown, options?: Omit<ApiRequestOptions, "method" | "body">): Promise<ApiResponse<T>> {
    return this.request<T>(path, { ...options, method: "PATCH", body });
  }

  delete<T = unknown>(path: string, options?: Omit<ApiRequestOptions, "method" | "body">): Promise<ApiResponse<T>> {
    return this.request<T>(path, { ...options, method: "DELETE" });
  }

  async request<T = unknown>(path: string, options: ApiRequestOptions = {}): Promise<ApiResponse<T>> {
    const identity = await this.resolveIdentity();
    if (!identity.success || !identity.data) return identity as ApiResponse<T>;
    // The credential fixes the tenant: send its slug, never the context's (empty before start(),
    // or a tenant id where the hub expects a slug).
    const tenant = identity.data.tenant ?? this.context.tenantId;
    const headers: Record<string, string> = {
      "Content-Type": "application/json",
      Accept: "application/json",
      ...this.defaultHeaders,
      Authorization: `Bearer ${this.token}`,
      ...(tenant ? { "X-Tenant-Slug": tenant } : {}),
      "X-Caller-Plugin-ID": this.context.pluginId,
      ...(this.context.userId ? { "X-User-ID": this.context.userId } : {}),
      ...(this.context.workspaceId ? { "X-Workspace-ID": this.context.workspaceId } : {}),
      ...(options.headers ?? {}),
    };
    return this.fetchJson<T>(this.buildUrl(path, options.params), {
      method: options.method ?? "GET",
      headers,
      ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
    }, options.timeout);
  }

  private buildUrl(path: string, params?: Record<string, string | number | boolean | undefined>): string {
    const normalized = path.startsWith("/") ? path : `/${path}`;
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(params ?? {})) if (value !== undefined) query.set(key, String(value));
    const text = query.toString();
    return text ? `${normalized}?${text}` : normalized;
  }

  private async fetchJson<T>(path: string, init: RequestInit, timeout = this.defaultTimeout): Promise<ApiResponse<T>> {
    let response: Response;
    try {
      response = await fetch(`${this.baseUrl}${path}`, { ...init, signal: AbortSignal.timeout(timeout) });
    } catch (error) {
      const timedOut = error instanceof DOMException && error.name === "TimeoutError";
      return { success: false, status: 0, error: timedOut ? `Request timed out after ${timeout}ms` : error instanceof Error ? error.message : "Unknown error", message: "Request failed" };
    }
    const status = response.status;
    const requestId = response.headers.get("x-request-id") ?? undefined;
    const text = await response.text().catch(() => "");
    let body: Record<string, unknown> | undefined;
    try {
      body = text ? (JSON.parse(text) as Record<string, unknown>) : undefined;
    } catch {
      if (!response.ok) return { success: false, status, error: `HTTP ${status}`, message: response.statusText, ...(requestId ? { requestId } : {}) };
      return { success: true, status };
    }
    if (response.ok) {
      return {
        success: true,
        status,
        data: body as T,
        ...(body && typeof body === "object" && "total" in body ? { total: body["total"] as number } : {}),
      };
    }
    // Both of the hub's shapes: nested on /api/v1, flat on the seed's routes.
    const error = errorFromBody(status, body, text, requestId, response.headers.get("x-plexhub-error"));
    const message = error.message.replace(/^[A-Z_]+ \(\d+\): /, "");
    return {
      success: false,
      status,
      error: message,
      message,
      code: error.code,
      ...(error.details !== undefined ? { details: error.details } : {}),
      ...(requestId ? { requestId } : {}),
    };
  }
}

// ---------------------------------------------------------------------------------------------
// ServiceClient
// ---------------------------------------------------------------------------------------------

function failure<T>(response: ApiResponse<unknown>, message?: string): ApiResponse<T> {
  const { data: _data, total: _total, ...rest } = response;
  return { ...rest, success: false, ...(message !== undefined ? { message } : {}) };
}

function withAliases(service: Record<string, unknown> | undefined): DiscoveredService | undefined {
  if (!service) return undefined;
  return { ...service, name: service["serviceName"], health: service["status"] } as unknown as DiscoveredService;
}

/** The registry and the gateway, through the seed's routes. */
export class ServiceClient {
  constructor(
    private readonly api: ApiClient,
    private readonly context: PluginContext,
  ) {}

  async registerServices(services: ServiceDefinition[]): Promise<ApiResponse<{ serviceId: string; heartbeatIntervalSeconds?: number }[]>> {
    const results: { serviceId: string; heartbeatIntervalSeconds?: number }[] = [];
    for (const service of services) {
      const response = await this.registerService(service);
      if (!response.success) return failure(response, `Failed to register service "${service.name}": ${response.message ?? response.error}`);
      results.push(response.data ?? { serviceId: "" });
    }
    return { success: true, status: 201, data: results };
  }

  async registerService(service: ServiceDefinition): Promise<ApiResponse<{ serviceId: string; heartbeatIntervalSeconds?: number }>> {
    const response = await this.api.post<{ success: boolean; serviceId: string; heartbeatIntervalSeconds?: number }>("/api/plugin-gateway/services/register", {
      pluginId: this.context.pluginId,
      serviceName: service.name,
      version: service.version,
      baseUrl: service.baseUrl,
      endpoints: service.endpoints,
      metadata: service.metadata,
    });
    if (!response.success) return failure(response);
    const data = response.data;
    return {
      success: true,
      status: 201,
      data: { serviceId: data?.serviceId ?? "", ...(data?.heartbeatIntervalSeconds ? { heartbeatIntervalSeconds: data.heartbeatIntervalSeconds } : {}) },
    };
  }

  async deregisterService(serviceName: string): Promise<ApiResponse<void>> {
    const response = await this.api.delete(`/api/plugin-gateway/services/${encodeURIComponent(this.context.pluginId)}/${encodeURIComponent(serviceName)}`);
    const { data: _data, ...rest } = response;
    return rest as ApiResponse<void>;
  }

  async deregisterAllServices(serviceNames: string[]): Promise<void> {
    await Promise.all(serviceNames.map((name) => this.deregisterService(name)));
  }

  /** The best replica of a service (`version`: an npm range, new with plexhub). */
  async discoverService(serviceName: string, options: { version?: string } = {}): Promise<ApiResponse<DiscoveredService>> {
    const response = await this.api.get<{ service: Record<string, unknown> }>(`/api/plugin-gateway/services/discover/${encodeURIComponent(serviceName)}`, {
      ...(options.version ? { params: { version: options.version } } : {}),
    });
    if (!response.success) return failure(response);
    const service = withAliases(response.data?.service);
    return { success: true, status: response.status, ...(service ? { data: service } : {}) };
  }

  async listServices(options?: { pluginId?: string; status?: string }): Promise<ApiResponse<DiscoveredService[]>> {
    const params: Record<string, string> = {};
    if (options?.pluginId) params["pluginId"] = options.pluginId;
    if (options?.status) params["status"] = options.status;
    const response = await this.api.get<{ services: Record<string, unknown>[]; count: number }>("/api/plugin-gateway/services", { params });
    if (!response.success) return failure(response);
    return {
      success: true,
      status: response.status,
      data: (response.data?.services ?? []).map((service) => withAliases(service) as DiscoveredService),
      ...(response.data?.count !== undefined ? { total: response.data.count } : {}),
    };
  }

  async heartbeat(serviceId: string): Promise<ApiResponse<void>> {
    const response = await this.api.post(`/api/plugin-gateway/services/${encodeURIComponent(serviceId)}/heartbeat`);
    const { data: _data, ...rest } = response;
    return rest as ApiResponse<void>;
  }

  /** Calls another plugin's endpoint through the gateway (the seed's `/call`). */
  callPluginApi<T = unknown>(request: PluginApiCallRequest): Promise<ApiResponse<T>> {
    return this.api.post<T>("/api/plugin-gateway/call", {
      callerPluginId: this.context.pluginId,
      targetPluginId: request.targetPluginId,
      targetServiceName: request.serviceName,
      method: request.method,
      path: request.path,
      body: request.body,
      query: request.params,
      headers: request.headers,
    });
  }
}

// ---------------------------------------------------------------------------------------------
// SharedDataClient
// ---------------------------------------------------------------------------------------------

/** Shared data through the seed's routes, in the plugin's own namespace (its id) by default. */
export class SharedDataClient {
  private readonly namespace: string;

  constructor(
    private readonly api: ApiClient,
    private readonly context: PluginContext,
  ) {
    this.namespace = context.pluginId;
  }

  async set<T = unknown>(key: string, value: T, options?: SetSharedDataOptions): Promise<ApiResponse<void>> {
    const response = await this.api.post("/api/plugin-gateway/shared-data", {
      namespace: this.namespace,
      key,
      value,
      ownerId: this.context.pluginId,
      ...(options?.ttl !== undefined ? { ttl: options.ttl } : {}),
    });
    const { data: _data, ...rest } = response;
    return rest as ApiResponse<void>;
  }

  get<T = unknown>(key: string): Promise<ApiResponse<T>> {
    return this.getFromNamespace<T>(this.namespace, key);
  }

  async getFromNamespace<T = unknown>(namespace: string, key: string): Promise<ApiResponse<T>> {
    const response = await this.api.get<{ value: T }>(`/api/plugin-gateway/shared-data/${encodeURIComponent(namespace)}/${encodeURIComponent(key)}`);
    if (!response.success) return failure(response);
    return { success: true, status: response.status, data: response.data?.value as T };
  }

  async delete(key: string): Promise<ApiResponse<void>> {
    const response = await this.api.delete(`/api/plugin-gateway/shared-data/${encodeURIComponent(this.namespace)}/${encodeURIComponent(key)}`);
    const { data: _data, ...rest } = response;
    return rest as ApiResponse<void>;
  }

  listKeys(): Promise<ApiResponse<string[]>> {
    return this.listKeysFromNamespace(this.namespace);
  }

  async listKeysFromNamespace(namespace: string): Promise<ApiResponse<string[]>> {
    const response = await this.api.get<{ keys: string[]; count: number }>(`/api/plugin-gateway/shared-data/${encodeURIComponent(namespace)}`);
    if (!response.success) return failure(response);
    return { success: true, status: response.status, data: response.data?.keys ?? [], ...(response.data?.count !== undefined ? { total: response.data.count } : {}) };
  }
}

// ---------------------------------------------------------------------------------------------
// EventClient (the hub's event bus instead of Kafka)
// ---------------------------------------------------------------------------------------------

/**
 * Publishes through the hub's event bus. `eventName` without the `plugin.` prefix is published
 * under the plugin's own topic (`contact.created` from `plugin-crm` → `plugin.crm.contact.created`).
 * Subscriptions are declared in the manifest (`events.subscribes`) and delivered over HTTP: use
 * `EventRouter` from `@plexhub/sdk`; `subscribe` here says so.
 */
export class EventClient {
  constructor(
    private readonly api: ApiClient,
    private readonly context: PluginContext,
  ) {}

  /** The topic an event name is published under. */
  topic(eventName: string): string {
    if (eventName.startsWith("plugin.")) return eventName;
    return `plugin.${this.context.pluginId.replace(/^plugin-/, "")}.${eventName}`;
  }

  async publish<T = unknown>(eventName: string, data: T, options?: PublishEventOptions): Promise<void> {
    const id = randomUUID();
    const event = {
      id,
      type: this.topic(eventName),
      data,
      ...(options?.correlationId ? { correlationid: options.correlationId } : {}),
      ...(options?.causationId ? { causationid: options.causationId } : {}),
      ...(options?.partitionKey ? { partitionkey: options.partitionKey } : {}),
      ...(options?.workspaceId ?? this.context.workspaceId ? { subject: `workspace/${options?.workspaceId ?? this.context.workspaceId}` } : {}),
    };
    // Retried while the hub cannot be reached or answers 5xx (the same id is stored once).
    let wait = 100;
    for (let attempt = 0; ; attempt++) {
      const response = await this.api.post("/api/v1/events", event);
      if (response.success) return;
      if ((response.status !== 0 && response.status < 500 && response.status !== 429) || attempt >= 8) {
        throw Object.assign(new Error(`publishing ${event.type} failed: ${response.error}`), { code: response.code, status: response.status, details: response.details, requestId: response.requestId });
      }
      await new Promise((done) => setTimeout(done, wait));
      wait = Math.min(wait * 2, 5_000);
    }
  }

  async subscribe(eventName: string): Promise<string> {
    throw new Error(
      `subscribe(${JSON.stringify(eventName)}): with plexhub, subscriptions are declared in the manifest (events.subscribes) and delivered over HTTP to the plugin; handle them with EventRouter from @plexhub/sdk`,
    );
  }

  async unsubscribe(_subscriptionId: string): Promise<void> {}

  async unsubscribeAll(): Promise<void> {}

  getSubscriptionCount(): number {
    return 0;
  }
}

// ---------------------------------------------------------------------------------------------
// PlexicaPlugin
// ---------------------------------------------------------------------------------------------

/** Base class of a plugin, as the original's; add `token` to its config. */
export abstract class PlexicaPlugin {
  readonly api: ApiClient;
  readonly events: EventClient | null;
  readonly services: ServiceClient;
  readonly sharedData: SharedDataClient;
  readonly config: PluginConfig;
  protected context: PluginContext;
  private started = false;
  private registeredServiceNames: string[] = [];
  private beats: NodeJS.Timeout[] = [];

  /** `eventBus` is accepted for source compatibility and ignored: events go through the hub. */
  constructor(config: PluginConfig, _eventBus?: unknown) {
    this.config = config;
    this.context = { pluginId: config.pluginId, tenantId: "" };
    this.api = new ApiClient({ baseUrl: config.apiBaseUrl, context: this.context, ...(config.token ? { token: config.token } : {}) });
    this.services = new ServiceClient(this.api, this.context);
    this.sharedData = new SharedDataClient(this.api, this.context);
    this.events = new EventClient(this.api, this.context);
  }

  abstract getServiceDefinitions(): ServiceDefinition[];

  async onInstall(_context: PluginContext): Promise<void> {}
  async onActivate(_context: PluginContext): Promise<void> {}
  async onDeactivate(_context: PluginContext): Promise<void> {}
  async onUninstall(_context: PluginContext): Promise<void> {}

  /**
   * Registers the services and calls `onActivate`. The tenant is the credential's: `tenantId`
   * may be left out, or must name it (its slug); another tenant is refused (`TENANT_MISMATCH`).
   */
  async start(tenantId?: string, userId?: string): Promise<void> {
    if (this.started) throw new Error(`Plugin "${this.config.pluginId}" is already started`);
    const identity = await this.api.resolveIdentity();
    if (!identity.success || !identity.data?.tenant) {
      throw Object.assign(new Error(`Plugin "${this.config.pluginId}" cannot authenticate: ${identity.error ?? "not a plugin credential"}`), { code: identity.code, status: identity.status });
    }
    const tenant = identity.data.tenant;
    if (tenantId && tenantId !== tenant) {
      throw Object.assign(new Error(`the credential belongs to tenant "${tenant}", not "${tenantId}"`), { code: "TENANT_MISMATCH", status: 403 });
    }
    this.context.tenantId = tenant;
    this.context.tenantSlug = tenant;
    if (userId) this.context.userId = userId;

    const services = this.getServiceDefinitions();
    if (services.length > 0) {
      const result = await this.services.registerServices(services);
      if (!result.success) {
        throw Object.assign(new Error(`Failed to register services: ${result.message ?? result.error}`), { code: result.code, status: result.status, details: result.details });
      }
      this.registeredServiceNames = services.map((s) => s.name);
      if (this.config.heartbeat ?? true) {
        for (const registered of result.data ?? []) {
          const every = (registered.heartbeatIntervalSeconds ?? 15) * 1000;
          const timer = setInterval(() => void this.services.heartbeat(registered.serviceId), every);
          timer.unref();
          this.beats.push(timer);
        }
      }
    }
    await this.onActivate(this.context);
    this.started = true;
  }

  /** Calls `onDeactivate`, stops the heartbeats and deregisters the services. */
  async stop(): Promise<void> {
    if (!this.started) return;
    await this.onDeactivate(this.context);
    if (this.events) await this.events.unsubscribeAll();
    for (const timer of this.beats) clearInterval(timer);
    this.beats = [];
    if (this.registeredServiceNames.length > 0) {
      await this.services.deregisterAllServices(this.registeredServiceNames);
      this.registeredServiceNames = [];
    }
    this.started = false;
  }

  isStarted(): boolean {
    return this.started;
  }

  getContext(): PluginContext {
    return { ...this.context };
  }
}

/** A plugin bound to a workspace (`X-Workspace-ID` on every request). */
export abstract class WorkspaceAwarePlugin extends PlexicaPlugin {
  get workspaceId(): string | undefined {
    return this.context.workspaceId;
  }

  override async start(tenantId?: string, userId?: string, workspaceId?: string): Promise<void> {
    if (workspaceId) this.context.workspaceId = workspaceId;
    await super.start(tenantId, userId);
  }

  setWorkspaceId(workspaceId: string): void {
    this.context.workspaceId = workspaceId;
  }
}
