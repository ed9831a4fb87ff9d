/**
 * @plexhub/sdk: what a plugin written in TypeScript needs to talk to plexhub.
 *
 * - `Client`: calls to other plugins through the gateway (`call`, `getJson`, `postJson`, the
 *   seed's `callPlugin`), shared data (`dataGet`, `dataSet`, `dataReplace`, `dataUpdate`,
 *   `dataTransaction`, `dataList`, `dataWatch`), events (`publish`), the registry
 *   (`keepRegistered`, `discover`, `discovery`), with the hub's refusals as `PlexhubError`.
 * - `serve`: runs the plugin's HTTP handler for all its `Installations`, behind the signature
 *   check, registered and beating until `stop()`.
 * - `Verifier`: accepts only requests the hub signed (`v2` HMAC, `v1` Ed25519), with
 *   `nodeVerifier`, `expressVerifier` and `fastifyVerifier` middleware.
 * - `EventRouter`: the plugin's event deliveries, verified and dispatched by pattern.
 */
export { Client, ContendedError } from "./client.js";
export type { CallBody, CallInit, ClientOptions, DataChange, DataEntry, DataOp, Identity, SeedCallAnswer, SeedCallRequest } from "./client.js";
export { isTargetUnavailable } from "./codes.js";
export type { ErrorCode, HubErrorCode, VerifierErrorCode } from "./codes.js";
export { Discovery, discover } from "./discovery.js";
export type { DiscoveredService } from "./discovery.js";
export { PlexhubError, PluginError, SettingError } from "./errors.js";
export { EventRouter, patternMatches, publish, publishAll } from "./events.js";
export type { Delivery, DeliveryAnswer, Event, EventHandler, OutgoingEvent, PublishOptions, Published } from "./events.js";
export { Installations, RunningPlugin, serve } from "./plugin.js";
export type { ServeOptions } from "./plugin.js";
export { Heartbeats, keepRegistered, manifestServices, registerReplica } from "./registration.js";
export type { HeartbeatStats, KeepRegisteredOptions, ServiceSpec } from "./registration.js";
export { readSse } from "./sse.js";
export type { SseEvent } from "./sse.js";
export { MAX_SKEW_MS, Refused, SIGNATURE_HEADER, Verifier, VerifyError, expressVerifier, fastifyVerifier, nodeVerifier, verifyRequest } from "./verify.js";
export type { HubHandler, HubRequest, IncomingRequestLike, PublicKeyInfo, SignedFields, SigningSecretInfo, VerifyFailure } from "./verify.js";
export type { components, paths } from "./generated/openapi.js";
