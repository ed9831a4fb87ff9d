// The hub's stable error codes (generated from /openapi.json) and the codes this SDK's request
// verifier answers with.
import type { components } from "./generated/openapi.js";

/** A stable error code of the hub (`error.code` in its answers). */
export type HubErrorCode = components["schemas"]["ErrorCode"];

/**
 * The codes a plugin's verifier refuses a request with (401), as the Rust SDK's `HubRequest`
 * (its fourth, `NO_VERIFIER`, is an axum wiring error with no TypeScript counterpart).
 */
export type VerifierErrorCode = "UNSIGNED_REQUEST" | "BAD_SIGNATURE" | "REPLAYED_REQUEST";

/**
 * A code as received: one of the hub's, or a code this version of the SDK does not know (a newer
 * hub). `(string & {})` keeps editor completion for the known ones.
 */
export type ErrorCode = HubErrorCode | VerifierErrorCode | (string & {});

const TARGET_UNAVAILABLE: ReadonlySet<string> = new Set([
  "SERVICE_UNAVAILABLE",
  "SERVICE_NOT_FOUND",
  "UPSTREAM_TIMEOUT",
  "UPSTREAM_UNREACHABLE",
  "UPSTREAM_FAILED",
]);

/**
 * Whether the called plugin cannot be reached right now (no healthy replica, refused or timed-out
 * connection, not discoverable): worth a later retry or a "try again" message, not a bug report.
 */
export function isTargetUnavailable(code: ErrorCode): boolean {
  return TARGET_UNAVAILABLE.has(code);
}
