//! The web dashboard over HTTP (no browser): sign-in, sessions (expiry, sign-out, across two
//! hubs), CSRF refusals, the failed sign-in limit, every page's 303/404/200, tenant isolation,
//! publishing a bad manifest, showing a new credential once, and the overview's live stream.

use std::time::Duration;

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{ADMIN, TestApp, analytics, crm_at};

/// A browser without JavaScript: no redirects followed, cookies kept by hand.
struct Browser {
    base: String,
    http: reqwest::Client,
    session: String,
    csrf: String,
}

/// A response as text.
struct Page {
    status: StatusCode,
    location: String,
    body: String,
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The value of cookie `name` set by `response`.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|value| {
            let (pair, _) = value.split_once(';').unwrap_or((value, ""));
            let (key, value) = pair.split_once('=')?;
            (key == name).then(|| value.to_owned())
        })
}

/// The `value` of the first hidden `csrf` field of a page.
fn csrf_in(body: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = body.find(marker).expect("a csrf field") + marker.len();
    body[start..]
        .split('"')
        .next()
        .expect("csrf value")
        .to_owned()
}

async fn read(response: reqwest::Response) -> Page {
    let status = response.status();
    let location = response
        .headers()
        .get(LOCATION)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response.text().await.expect("body");
    Page {
        status,
        location,
        body,
    }
}

/// Submits the sign-in form with `token`: the raw answer and the session cookie if one was set.
async fn submit_login(base: &str, token: &str) -> (Page, Option<String>) {
    let http = client();
    let form = http
        .get(format!("{base}/ui/login"))
        .send()
        .await
        .expect("login form");
    let login_csrf = set_cookie(&form, "plexhub_login_csrf").expect("login csrf cookie");
    let form = read(form).await;
    assert_eq!(form.status, 200);
    let field = csrf_in(&form.body);
    assert_eq!(field, login_csrf, "the form's token is the cookie's");
    let answer = http
        .post(format!("{base}/ui/login"))
        .header(COOKIE, format!("plexhub_login_csrf={login_csrf}"))
        .form(&[("token", token), ("csrf", field.as_str())])
        .send()
        .await
        .expect("login");
    let session = set_cookie(&answer, "plexhub_session").filter(|value| !value.is_empty());
    (read(answer).await, session)
}

impl Browser {
    /// Signs in with the admin token.
    async fn sign_in(app: &TestApp) -> Self {
        Self::sign_in_at(&app.base).await
    }

    async fn sign_in_at(base: &str) -> Self {
        let (answer, session) = submit_login(base, ADMIN).await;
        assert_eq!(answer.status, 303, "{}", answer.body);
        assert_eq!(answer.location, "/ui");
        let mut browser = Self {
            base: base.to_owned(),
            http: client(),
            session: session.expect("session cookie"),
            csrf: String::new(),
        };
        let overview = browser.get("/ui").await;
        assert_eq!(overview.status, 200, "{}", overview.body);
        browser.csrf = csrf_in(&overview.body);
        browser
    }

    /// The same session on another hub.
    fn on(&self, base: &str) -> Self {
        Self {
            base: base.to_owned(),
            http: client(),
            session: self.session.clone(),
            csrf: self.csrf.clone(),
        }
    }

    async fn get(&self, path: &str) -> Page {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header(COOKIE, format!("plexhub_session={}", self.session))
            .send()
            .await
            .expect("get");
        read(response).await
    }

    /// Posts a form; `csrf` is added as the `csrf` field when given.
    async fn post(&self, path: &str, fields: &[(&str, &str)], csrf: Option<&str>) -> Page {
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        if let Some(csrf) = csrf {
            form.push(("csrf", csrf));
        }
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header(COOKIE, format!("plexhub_session={}", self.session))
            .form(&form)
            .send()
            .await
            .expect("post");
        read(response).await
    }
}

/// Every signed-in page, for the 303 and 200 checks (acme has CRM installed).
const PAGES: &[&str] = &[
    "/ui",
    "/ui/tenants",
    "/ui/tenants/acme",
    "/ui/tenants/acme/installations/plugin-crm",
    "/ui/tenants/acme/installations/plugin-crm/uninstall",
    "/ui/tenants/acme/services",
    "/ui/tenants/acme/graph",
    "/ui/tenants/acme/access",
    "/ui/tenants/acme/access?caller=plugin-crm&service=crm.contacts&method=GET&path=%2Fcontacts",
    "/ui/tenants/acme/events",
    "/ui/catalog",
    "/ui/catalog/plugin-crm",
    "/ui/calls",
    "/ui/calls?tenant=acme&status=5xx",
];

/// A tenant `acme` with CRM installed and active, and an empty tenant `globex`.
async fn seed(app: &TestApp) {
    app.create_tenant("acme").await;
    app.create_tenant("globex").await;
    app.publish(&crm_at("1.0.0")).await;
    app.publish(&analytics()).await;
    app.install("acme", "plugin-crm", json!({ "activate": true }))
        .await;
}

async fn pages_need_a_session_and_answer_404_for_unknown_things(app: TestApp) {
    seed(&app).await;
    let anonymous = Browser {
        base: app.base.clone(),
        http: client(),
        session: "not-a-session".to_owned(),
        csrf: String::new(),
    };
    for path in PAGES {
        let page = anonymous.get(path).await;
        assert_eq!(
            (page.status.as_u16(), page.location.as_str()),
            (303, "/ui/login"),
            "{path}"
        );
    }
    let assets = anonymous.get("/ui/assets/htmx-2.0.11.min.js").await;
    assert_eq!(assets.status, 200, "the scripts need no session");

    let browser = Browser::sign_in(&app).await;
    for path in PAGES {
        let page = browser.get(path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        assert!(page.body.contains("<main"), "{path} is a page");
        assert!(!page.body.contains(ADMIN), "{path} never shows the token");
    }
    for path in [
        "/ui/tenants/nobody",
        "/ui/tenants/nobody/services",
        "/ui/tenants/nobody/graph",
        "/ui/tenants/nobody/access",
        "/ui/tenants/nobody/events",
        "/ui/tenants/acme/installations/plugin-nothing",
        "/ui/tenants/globex/installations/plugin-crm",
        "/ui/catalog/plugin-nothing",
        "/ui/calls?tenant=nobody",
    ] {
        let page = browser.get(path).await;
        assert_eq!(page.status, 404, "{path}: {}", page.body);
    }
}

async fn sign_in_expiry_and_sign_out(app: TestApp) {
    let (refused, session) = submit_login(&app.base, "not-the-admin-token-at-all").await;
    assert_eq!(refused.status, 401);
    assert!(session.is_none(), "no session for a wrong token");
    assert!(refused.body.contains("not the admin token"));
    assert!(refused.body.contains("name=\"token\""), "the form again");
    assert!(!refused.body.contains("not-the-admin-token-at-all"));

    let browser = Browser::sign_in(&app).await;
    assert_eq!(browser.get("/ui/tenants").await.status, 200);
    app.clock.advance(12 * 3600 * 1000 - 1000);
    assert_eq!(
        browser.get("/ui/tenants").await.status,
        200,
        "12 h minus 1 s"
    );
    app.clock.advance(2000);
    let expired = browser.get("/ui/tenants").await;
    assert_eq!(
        (expired.status.as_u16(), expired.location.as_str()),
        (303, "/ui/login")
    );

    let browser = Browser::sign_in(&app).await;
    let other = Browser::sign_in(&app).await;
    let out = browser.post("/ui/logout", &[], Some(&browser.csrf)).await;
    assert_eq!(
        (out.status.as_u16(), out.location.as_str()),
        (303, "/ui/login")
    );
    assert_eq!(browser.get("/ui").await.status, 303, "signed out");
    assert_eq!(other.get("/ui").await.status, 200, "other sessions stay");
}

async fn state_changes_need_the_csrf_token(app: TestApp) {
    seed(&app).await;
    let browser = Browser::sign_in(&app).await;
    let deactivate = "/ui/tenants/acme/installations/plugin-crm/deactivate";
    assert_eq!(browser.post(deactivate, &[], None).await.status, 403);
    assert_eq!(
        browser
            .post(deactivate, &[], Some("0123456789abcdef"))
            .await
            .status,
        403
    );
    let header_wrong = browser
        .http
        .post(format!("{}{deactivate}", app.base))
        .header(COOKIE, format!("plexhub_session={}", browser.session))
        .header("X-CSRF-Token", "wrong")
        .send()
        .await
        .expect("post");
    assert_eq!(header_wrong.status(), 403);
    let installation = app
        .admin(
            Method::GET,
            "/api/v1/tenants/acme/installations/plugin-crm",
            None,
        )
        .await;
    assert_eq!(
        installation.assert_status(200)["state"],
        "ACTIVE",
        "nothing changed"
    );

    let by_header = browser
        .http
        .post(format!("{}{deactivate}", app.base))
        .header(COOKIE, format!("plexhub_session={}", browser.session))
        .header("X-CSRF-Token", &browser.csrf)
        .send()
        .await
        .expect("post");
    assert_eq!(by_header.status(), 303, "htmx sends the token as a header");
    let installation = app
        .admin(
            Method::GET,
            "/api/v1/tenants/acme/installations/plugin-crm",
            None,
        )
        .await;
    assert_eq!(installation.assert_status(200)["state"], "DISABLED");
    let activate = browser
        .post(
            "/ui/tenants/acme/installations/plugin-crm/activate",
            &[],
            Some(&browser.csrf),
        )
        .await;
    assert_eq!(activate.status, 303, "a form sends it as a field");

    // The sign-in form has its own token, bound to a cookie.
    let http = client();
    let no_cookie = http
        .post(format!("{}/ui/login", app.base))
        .form(&[("token", ADMIN), ("csrf", "guessed")])
        .send()
        .await
        .expect("login");
    assert_eq!(no_cookie.status(), 403);
    assert!(set_cookie(&no_cookie, "plexhub_session").is_none());
}

async fn failed_sign_ins_are_limited(app: TestApp) {
    for _ in 0..10 {
        let (refused, _) = submit_login(&app.base, "wrong-token-wrong-token").await;
        assert_eq!(refused.status, 401);
    }
    let (limited, session) = submit_login(&app.base, ADMIN).await;
    assert_eq!(limited.status, 429, "even the right token waits");
    assert!(session.is_none());
    assert!(limited.body.contains("Too many failed sign-ins"));
    app.clock.advance(60_000);
    let (answer, session) = submit_login(&app.base, ADMIN).await;
    assert_eq!(answer.status, 303);
    assert!(session.is_some());
}

async fn tenant_pages_show_only_their_tenant(app: TestApp) {
    seed(&app).await;
    let browser = Browser::sign_in(&app).await;
    let acme = browser.get("/ui/tenants/acme").await;
    assert!(acme.body.contains("plugin-crm"));
    for path in [
        "/ui/tenants/globex",
        "/ui/tenants/globex/services",
        "/ui/tenants/globex/events",
        "/ui/tenants/globex/access",
    ] {
        let page = browser.get(path).await;
        assert_eq!(page.status, 200, "{path}");
        assert!(
            !page.body.contains("plugin-crm"),
            "{path} shows acme's plugin"
        );
        assert!(
            !page.body.contains("crm.contacts"),
            "{path} shows acme's service"
        );
    }
    // The graph's plan form lists the catalog (shared by every tenant), never acme's nodes.
    let graph = browser.get("/ui/tenants/globex/graph").await;
    assert_eq!(graph.status, 200);
    assert!(
        !graph.body.contains("data-plugin="),
        "globex has no installation"
    );
    let services = browser.get("/ui/tenants/acme/services").await;
    assert!(services.body.contains("crm.contacts"));
}

async fn a_bad_manifest_is_refused_with_every_problem_at_its_path(app: TestApp) {
    let browser = Browser::sign_in(&app).await;
    let mut manifest = crm_at("1.0.0");
    manifest["version"] = json!("not-a-version");
    manifest["api"]["services"][0]["name"] = json!("Bad Name!");
    let refused = browser
        .post(
            "/ui/catalog",
            &[("manifest", &manifest.to_string())],
            Some(&browser.csrf),
        )
        .await;
    assert_eq!(refused.status, 400);
    assert!(
        refused.body.contains("<code class=\"path\">version</code>"),
        "{}",
        refused.body
    );
    assert!(
        refused
            .body
            .contains("<code class=\"path\">api.services.0.name</code>")
    );
    assert!(
        refused.body.contains("not-a-version"),
        "the manifest is kept in the form"
    );

    let not_json = browser
        .post(
            "/ui/catalog",
            &[("manifest", "{\"id\": ")],
            Some(&browser.csrf),
        )
        .await;
    assert_eq!(not_json.status, 400);
    assert!(not_json.body.contains("not JSON"));

    let published = browser
        .post(
            "/ui/catalog",
            &[("manifest", &crm_at("1.2.0").to_string())],
            Some(&browser.csrf),
        )
        .await;
    assert_eq!(
        (published.status.as_u16(), published.location.as_str()),
        (303, "/ui/catalog/plugin-crm")
    );
    let shown = browser.get("/ui/catalog/plugin-crm").await.body;
    assert!(shown.contains("1.2.0 · PUBLISHED"), "{shown}");
}

async fn a_new_credential_is_shown_once(app: TestApp) {
    seed(&app).await;
    let browser = Browser::sign_in(&app).await;
    let issued = browser
        .post(
            "/ui/tenants/acme/installations/plugin-crm/credentials",
            &[],
            Some(&browser.csrf),
        )
        .await;
    assert_eq!(issued.status, 200);
    let start = issued.body.find("value=\"phk_").expect("the token") + "value=\"".len();
    let token: String = issued.body[start..]
        .split('"')
        .next()
        .expect("token")
        .to_owned();
    let whoami = app.as_plugin(&token, Method::GET, "/api/v1/whoami").await;
    assert_eq!(whoami.assert_status(200)["pluginId"], "plugin-crm");
    let again = browser
        .get("/ui/tenants/acme/installations/plugin-crm")
        .await;
    assert!(!again.body.contains(&token), "shown once");
    let id = token
        .trim_start_matches("phk_")
        .split('.')
        .next()
        .expect("id");
    assert!(again.body.contains(id), "listed by id");

    let revoked = browser
        .post(
            &format!("/ui/tenants/acme/installations/plugin-crm/credentials/{id}/revoke"),
            &[],
            Some(&browser.csrf),
        )
        .await;
    assert_eq!(revoked.status, 303, "{}", revoked.body);
    let refused = app.as_plugin(&token, Method::GET, "/api/v1/whoami").await;
    assert_eq!(refused.status, 401);
}

/// Reads the overview stream until an `overview` event satisfies `check`.
async fn overview_event_until(browser: &Browser, check: impl Fn(&str) -> bool) {
    let mut response = browser
        .http
        .get(format!("{}/ui/overview/stream", browser.base))
        .header(COOKIE, format!("plexhub_session={}", browser.session))
        .send()
        .await
        .expect("stream");
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("type")
            .starts_with("text/event-stream")
    );
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        let chunk = tokio::time::timeout(Duration::from_secs(5), response.chunk())
            .await
            .expect("an event within 5 s")
            .expect("stream")
            .expect("open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = seen.find("\n\n") {
            let event: String = seen.drain(..end + 2).collect();
            if event.contains("event: overview") && check(&event) {
                return;
            }
        }
    }
    panic!("no matching overview event");
}

/// The number in an overview card.
fn card(event: &str, id: &str) -> String {
    let marker = format!("id=\"{id}\"><div class=\"value\">");
    let start = event.find(&marker).expect("the card") + marker.len();
    event[start..].split('<').next().expect("value").to_owned()
}

async fn the_overview_streams_a_service_going_down_and_up(app: TestApp) {
    seed(&app).await;
    let crm = app
        .install("globex", "plugin-crm", json!({ "activate": true }))
        .await;
    let browser = Browser::sign_in(&app).await;
    let overview = browser.get("/ui").await;
    assert!(
        overview
            .body
            .contains("sse-connect=\"/ui/overview/stream\"")
    );
    assert!(
        overview
            .body
            .contains("/ui/assets/htmx-ext-sse-2.2.4.min.js")
    );
    let health = |status: &'static str| {
        let app = &app;
        let crm = crm.clone();
        async move {
            app.send(
                Method::POST,
                "/api/v1/services/crm.contacts/instances/default/heartbeat",
                Some(&crm),
                &[],
                None,
            )
            .await
            .assert_status(200);
            app.send(
                Method::POST,
                "/api/v1/services/crm.contacts/instances/default/health",
                Some(&crm),
                &[],
                Some(&json!({ "status": status })),
            )
            .await
            .assert_status(200);
        }
    };
    health("UNAVAILABLE").await;
    overview_event_until(&browser, |event| card(event, "instances-down") == "1").await;
    health("HEALTHY").await;
    overview_event_until(&browser, |event| {
        card(event, "instances-down") == "0" && card(event, "instances-up") == "1"
    })
    .await;
}

async fn the_graph_has_a_node_per_installed_plugin(app: TestApp) {
    seed(&app).await;
    let browser = Browser::sign_in(&app).await;
    let planned = browser
        .get("/ui/tenants/acme/graph?plan=plugin-analytics")
        .await;
    assert_eq!(planned.status, 200);
    assert!(
        planned
            .body
            .contains("class=\"node planned\" data-plugin=\"plugin-analytics\""),
        "{}",
        planned.body
    );
    assert_eq!(planned.body.matches("class=\"node installed\"").count(), 1);
    app.install("acme", "plugin-analytics", json!({})).await;
    let graph = browser.get("/ui/tenants/acme/graph").await;
    assert_eq!(graph.status, 200);
    assert!(graph.body.contains("<svg"));
    let installed = graph.body.matches("class=\"node installed\"").count();
    assert_eq!(installed, 2, "{}", graph.body);
    assert!(graph.body.contains("data-plugin=\"plugin-crm\""));
    assert!(graph.body.contains("data-plugin=\"plugin-analytics\""));
    assert!(
        graph.body.contains(
            "class=\"edge required met\" data-from=\"plugin-analytics\" data-to=\"plugin-crm\""
        ),
        "{}",
        graph.body
    );

    app.admin(
        Method::DELETE,
        "/api/v1/tenants/acme/installations/plugin-crm?cascade=true",
        None,
    )
    .await
    .assert_status(200);
    let empty = browser.get("/ui/tenants/acme/graph").await;
    assert_eq!(
        empty.body.matches("class=\"node installed\"").count(),
        0,
        "uninstalled"
    );
}

/// The calls page shows a page of calls and links the older ones, which the next page lists.
async fn calls_are_listed_a_page_at_a_time(app: TestApp) {
    seed(&app).await;
    let analytics = app
        .install("acme", "plugin-analytics", json!({ "activate": true }))
        .await;
    // Refused calls are audited too: 51 of them fill a page of 50 and one more.
    for _ in 0..51 {
        app.as_plugin(
            &analytics,
            Method::GET,
            "/api/v1/proxy/crm.contacts/contacts",
        )
        .await
        .assert_error(403, "PERMISSION_DENIED");
    }
    let browser = Browser::sign_in(&app).await;
    let started = std::time::Instant::now();
    let first = loop {
        let page = browser.get("/ui/calls?tenant=acme").await;
        if page.body.contains("Older calls") {
            break page;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no second page: {}",
            page.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        first.body.contains("50 calls, newest first."),
        "{}",
        first.body
    );
    assert!(!first.body.contains(">Newest<"), "already the newest");
    let next = first
        .body
        .split("href=\"")
        .map(|rest| rest.split('"').next().unwrap_or_default())
        .find(|href| href.contains("cursor="))
        .expect("a link to the older calls")
        .replace("&amp;", "&");
    assert!(next.contains("tenant=acme"), "the filter is kept: {next}");
    let second = browser.get(&next).await;
    assert_eq!(second.status, 200);
    assert!(
        second.body.contains("1 call, newest first (a later page)."),
        "{}",
        second.body
    );
    assert!(second.body.contains(">Newest<") && !second.body.contains("Older calls"));
}

crate::on_both_backends!(
    calls_are_listed_a_page_at_a_time,
    the_graph_has_a_node_per_installed_plugin,
    pages_need_a_session_and_answer_404_for_unknown_things,
    sign_in_expiry_and_sign_out,
    state_changes_need_the_csrf_token,
    failed_sign_ins_are_limited,
    tenant_pages_show_only_their_tenant,
    a_bad_manifest_is_refused_with_every_problem_at_its_path,
    a_new_credential_is_shown_once,
    the_overview_streams_a_service_going_down_and_up,
);

/// A session made on one hub works on the other (PostgreSQL + Redis), and signing out on
/// either ends it on both.
#[tokio::test]
async fn sessions_work_across_hubs() {
    let Some((a, b)) = crate::helpers::two_hubs(None).await else {
        return;
    };
    let on_a = Browser::sign_in(&a).await;
    let on_b = on_a.on(&b.base);
    assert_eq!(on_b.get("/ui/tenants").await.status, 200);
    let out = on_b.post("/ui/logout", &[], Some(&on_b.csrf)).await;
    assert_eq!(out.status, 303);
    assert_eq!(on_a.get("/ui/tenants").await.status, 303);
}
