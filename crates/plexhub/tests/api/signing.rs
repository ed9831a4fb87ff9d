//! The proof of origin on forwarded requests: HMAC-SHA256 with each installation's own secret
//! (the default), readable only by that installation; Ed25519 chosen per installation; rotation
//! with an overlap window, seen by a second hub within a second.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use plexhub_core::signing::{
    PublicKey, SignedRequest, SigningSecret, TrustedKeys, VerifyError, verify_any,
};
use plexhub_server::Clock;

use crate::gateway::{acme, upstream};
use crate::helpers::TestApp;

/// The secrets an installation reads with its own credential.
async fn own_secrets(app: &TestApp, token: &str) -> (String, Vec<SigningSecret>) {
    let reply = app
        .as_plugin(token, Method::GET, "/api/v1/self/signing-secrets")
        .await;
    let body = reply.assert_status(200);
    let secrets = body["secrets"]
        .as_array()
        .expect("secrets")
        .iter()
        .map(|secret| {
            SigningSecret::from_text(
                secret["keyId"].as_str().expect("keyId"),
                secret["secret"].as_str().expect("secret"),
            )
            .expect("a valid secret")
        })
        .collect();
    (body["scheme"].as_str().expect("scheme").to_owned(), secrets)
}

/// What Analytics' call to CRM looked like at the plugin: the signature and the signed fields.
struct Seen {
    signature: String,
    tenant_id: String,
    request_id: String,
}

async fn call_crm(app: &TestApp, analytics: &str) -> Seen {
    let reply = app
        .send(
            Method::GET,
            "/api/v1/proxy/crm.contacts/contacts?limit=5",
            Some(analytics),
            &[("x-request-id", "req-signing-1")],
            None,
        )
        .await;
    let headers = reply.assert_status(200)["headers"].clone();
    let text = |name: &str| headers[name].as_str().expect(name).to_owned();
    Seen {
        signature: text("x-plexhub-signature"),
        tenant_id: text("x-tenant-id"),
        request_id: text("x-request-id"),
    }
}

fn signed<'a>(seen: &'a Seen) -> SignedRequest<'a> {
    SignedRequest {
        method: "GET",
        path: "/contacts",
        query: "limit=5",
        tenant_id: &seen.tenant_id,
        caller: "plugin-analytics",
        request_id: &seen.request_id,
        user_id: "",
        workspace_id: "",
    }
}

fn trusting(secrets: Vec<SigningSecret>) -> TrustedKeys {
    TrustedKeys {
        public_keys: Vec::new(),
        secrets,
    }
}

async fn forwarded_requests_carry_the_targets_own_hmac(app: TestApp) {
    let plugin = upstream().await;
    let (crm, analytics) = acme(&app, &plugin.base).await;
    let (scheme, secrets) = own_secrets(&app, &crm).await;
    assert_eq!(scheme, "hmac");
    assert_eq!(secrets.len(), 1);

    let seen = call_crm(&app, &analytics).await;
    assert!(
        seen.signature
            .starts_with(&format!("v2;keyId={};ts=", secrets[0].key_id())),
        "{}",
        seen.signature
    );
    let now = app.clock.now_ms();
    let trusted = trusting(secrets);
    assert!(verify_any(&trusted, &seen.signature, &signed(&seen), now, 60_000).is_ok());
    let tampered = SignedRequest {
        path: "/contacts/1",
        ..signed(&seen)
    };
    assert_eq!(
        verify_any(&trusted, &seen.signature, &tampered, now, 60_000),
        Err(VerifyError::Mismatch)
    );

    // Analytics' own secret is another one: it cannot verify (or forge) CRM's requests.
    let (_, theirs) = own_secrets(&app, &analytics).await;
    assert_ne!(theirs[0].key_id(), trusted.secrets[0].key_id());
    assert_eq!(
        verify_any(
            &trusting(theirs),
            &seen.signature,
            &signed(&seen),
            now,
            60_000
        ),
        Err(VerifyError::UnknownKey)
    );
    // Only an installation reads its secrets: the admin cannot.
    app.admin(Method::GET, "/api/v1/self/signing-secrets", None)
        .await
        .assert_error(403, "FORBIDDEN");
    // The installation's view names its scheme; the install answer carried the secret once.
    let view = app
        .admin(
            Method::GET,
            "/api/v1/tenants/acme/installations/plugin-crm",
            None,
        )
        .await;
    assert_eq!(view.assert_status(200)["signing"], "hmac");
    assert!(view.body.get("signingSecret").is_none());
}

async fn an_installation_may_choose_ed25519(app: TestApp) {
    let plugin = upstream().await;
    app.create_tenant("acme").await;
    app.publish(&crate::helpers::crm_at("1.0.0")).await;
    app.publish(&crate::helpers::analytics()).await;
    let installed = app
        .admin(
            Method::POST,
            "/api/v1/tenants/acme/installations",
            Some(
                &json!({"pluginId": "plugin-crm", "baseUrl": plugin.base, "activate": true,
                         "signing": "ed25519"}),
            ),
        )
        .await;
    let body = installed.assert_status(201);
    assert_eq!(body["installation"]["signing"], "ed25519");
    assert!(
        body["credential"]["signingSecret"]["secret"].is_string(),
        "the secret is issued anyway, for a later switch: {body}"
    );
    let analytics = app
        .install(
            "acme",
            "plugin-analytics",
            json!({"activate": true, "grants": ["plugin.crm.contacts.read"]}),
        )
        .await;
    let seen = call_crm(&app, &analytics).await;
    assert!(
        seen.signature.starts_with("v1;keyId="),
        "{}",
        seen.signature
    );
    let published = app
        .send(Method::GET, "/.well-known/plexhub-keys", None, &[], None)
        .await;
    let keys: Vec<PublicKey> =
        serde_json::from_value(published.assert_status(200)["keys"].clone()).expect("keys");
    let trusted = TrustedKeys {
        public_keys: keys,
        secrets: Vec::new(),
    };
    let now = app.clock.now_ms();
    assert!(verify_any(&trusted, &seen.signature, &signed(&seen), now, 60_000).is_ok());

    app.admin(
        Method::POST,
        "/api/v1/tenants/acme/installations",
        Some(&json!({"pluginId": "plugin-analytics", "baseUrl": plugin.base, "signing": "rsa"})),
    )
    .await
    .assert_error(400, "INVALID_BODY");
}

/// `X-User-ID` and `X-Workspace-ID`: one rule on both routes. Forwarded as the caller's
/// assertion, covered by the signature (changing either breaks it), checked for form.
async fn user_context_is_forwarded_and_signed_on_both_routes(app: TestApp) {
    let plugin = upstream().await;
    let (crm, analytics) = acme(&app, &plugin.base).await;
    let (_, secrets) = own_secrets(&app, &crm).await;
    let trusted = trusting(secrets);
    let context = [("x-user-id", "user-7@acme"), ("x-workspace-id", "ws-42")];
    let proxied = app
        .send(
            Method::GET,
            "/api/v1/proxy/crm.contacts/contacts?limit=5",
            Some(&analytics),
            &context,
            None,
        )
        .await;
    let proxied = proxied.assert_status(200)["headers"].clone();
    let call = json!({
        "targetPluginId": "plugin-crm", "targetServiceName": "crm.contacts",
        "method": "GET", "path": "/contacts?limit=5",
        "headers": { "x-user-id": "overridden-by-the-request-header" },
    });
    let called = app
        .send(
            Method::POST,
            "/api/plugin-gateway/call",
            Some(&analytics),
            &context,
            Some(&call),
        )
        .await;
    let called = called.assert_status(200)["data"]["headers"].clone();
    for seen in [&proxied, &called] {
        assert_eq!(seen["x-user-id"], "user-7@acme", "{seen}");
        assert_eq!(seen["x-workspace-id"], "ws-42", "{seen}");
        let text = |name: &str| seen[name].as_str().expect(name).to_owned();
        let signature = text("x-plexhub-signature");
        let (tenant_id, request_id) = (text("x-tenant-id"), text("x-request-id"));
        let signed = SignedRequest {
            method: "GET",
            path: "/contacts",
            query: "limit=5",
            tenant_id: &tenant_id,
            caller: "plugin-analytics",
            request_id: &request_id,
            user_id: "user-7@acme",
            workspace_id: "ws-42",
        };
        let now = app.clock.now_ms();
        assert!(verify_any(&trusted, &signature, &signed, now, 60_000).is_ok());
        for changed in [
            SignedRequest {
                user_id: "user-8@acme",
                ..signed
            },
            SignedRequest {
                workspace_id: "",
                ..signed
            },
        ] {
            assert_eq!(
                verify_any(&trusted, &signature, &changed, now, 60_000),
                Err(VerifyError::Mismatch)
            );
        }
    }

    let too_long = "u".repeat(257);
    // (A non-ASCII value cannot be sent by this client; the hub's check refuses it too.)
    for value in ["has space", "tab\there", too_long.as_str()] {
        let refused = app
            .send(
                Method::GET,
                "/api/v1/proxy/crm.contacts/contacts",
                Some(&analytics),
                &[("x-user-id", value)],
                None,
            )
            .await;
        refused.assert_error(400, "INVALID_PARAMETER");
        let refused = app
            .send(
                Method::POST,
                "/api/plugin-gateway/call",
                Some(&analytics),
                &[("x-workspace-id", value)],
                Some(&call),
            )
            .await;
        assert_eq!(refused.status, 400, "{}", refused.body);
        assert_eq!(
            refused.body["code"], "INVALID_PARAMETER",
            "{}",
            refused.body
        );
        assert!(refused.body["error"].is_string(), "{}", refused.body);
    }
}

crate::on_both_backends!(
    forwarded_requests_carry_the_targets_own_hmac,
    an_installation_may_choose_ed25519,
    user_context_is_forwarded_and_signed_on_both_routes,
);

/// Rotation on one hub: within a second the other hub signs with both secrets (new first), so
/// a plugin holding either accepts; after the overlap window only the new one signs.
#[tokio::test]
async fn a_rotation_overlaps_and_reaches_every_hub() {
    let clock = Clock::manual();
    let Some((a, b)) = crate::helpers::two_hubs(Some(clock.clone())).await else {
        return;
    };
    let plugin = upstream().await;
    let (crm, analytics) = acme(&a, &plugin.base).await;
    let (_, before) = own_secrets(&a, &crm).await;
    let old = before[0].clone();
    // Hub b has the old secret cached.
    let seen = call_crm(&b, &analytics).await;
    assert!(seen.signature.contains(old.key_id()));

    let rotated = a
        .admin(
            Method::POST,
            "/api/v1/tenants/acme/installations/plugin-crm/signing-secret/rotate",
            None,
        )
        .await;
    let body = rotated.assert_status(200).clone();
    let new = SigningSecret::from_text(
        body["signingSecret"]["keyId"].as_str().expect("keyId"),
        body["signingSecret"]["secret"].as_str().expect("secret"),
    )
    .expect("new secret");
    assert_eq!(body["stillSigning"], json!([old.key_id()]));

    let both = format!("keyId={},{};", new.key_id(), old.key_id());
    let started = tokio::time::Instant::now();
    let seen = loop {
        let seen = call_crm(&b, &analytics).await;
        if seen.signature.contains(&both) {
            break seen;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "hub b still signs {} a second after the rotation",
            seen.signature
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let now = clock.now_ms();
    for holder in [&old, &new] {
        let trusted = trusting(vec![holder.clone()]);
        assert!(verify_any(&trusted, &seen.signature, &signed(&seen), now, 60_000).is_ok());
    }
    let (_, during) = own_secrets(&b, &crm).await;
    let ids: Vec<&str> = during.iter().map(SigningSecret::key_id).collect();
    assert_eq!(ids, [new.key_id(), old.key_id()]);

    // The overlap (24 h by default) ends: only the new secret signs, on both hubs. (CRM's
    // replica beats once, or a day without heartbeats would make it UNAVAILABLE.)
    clock.advance(24 * 3600 * 1000 + 1);
    a.send(
        Method::POST,
        "/api/v1/services/crm.contacts/instances/default/heartbeat",
        Some(&crm),
        &[],
        None,
    )
    .await
    .assert_status(200);
    for hub in [&a, &b] {
        let seen = call_crm(hub, &analytics).await;
        assert!(
            seen.signature
                .starts_with(&format!("v2;keyId={};ts=", new.key_id())),
            "{}",
            seen.signature
        );
    }
    // The rotation is on the tenant's record (the hub's events), with the key ids only.
    let log = crate::events::read_stream(&a, &crm, "", Duration::from_millis(300)).await;
    let rotation = log
        .lines()
        .find(|line| {
            line.contains("plexhub.plugin.signing-secret-rotated") && line.starts_with("data:")
        })
        .unwrap_or_else(|| panic!("no rotation event in {log}"));
    assert!(rotation.contains(new.key_id()), "{rotation}");
    assert!(!rotation.contains(&new.secret_text()), "{rotation}");
}
