//! The OpenAPI document: served = committed (`docs/openapi.json`), valid OpenAPI 3.1, and it
//! covers exactly the routes the router serves.

use std::collections::BTreeSet;

use super::*;

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json")
}

/// Every (method, path) the router serves; each is exercised below.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/v1/health"),
    ("GET", "/api/v1/messages"),
    ("GET", "/api/v1/messages/{id}"),
    ("GET", "/api/v1/messages/{id}/payloads/{name}"),
    ("GET", "/api/v1/messages/{id}/receipt"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/api/v1/oots/exchanges/{id}"),
    ("POST", "/api/v1/messages"),
    ("POST", "/api/v1/messages/{id}/ack"),
    ("POST", "/api/v1/oots/exceptions"),
    ("POST", "/api/v1/oots/requests"),
    ("POST", "/api/v1/oots/responses"),
];

#[tokio::test]
async fn served_document_is_the_committed_one_and_valid() {
    let api = Api::start().await;
    let resp = api.get("/api/v1/openapi.json", RED_TOKEN).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let served = resp.text().await.expect("text");
    assert_eq!(served, as4gw::backend::openapi_json());

    // `AS4GW_UPDATE_OPENAPI=1 cargo test backend::openapi` rewrites the committed copy.
    if std::env::var_os("AS4GW_UPDATE_OPENAPI").is_some() {
        std::fs::write(committed_path(), &served).expect("write docs/openapi.json");
    }
    let committed = std::fs::read_to_string(committed_path()).expect("docs/openapi.json");
    assert!(
        committed == served,
        "docs/openapi.json is stale: run AS4GW_UPDATE_OPENAPI=1 cargo test backend::openapi"
    );

    // A structurally valid OpenAPI 3.1 document (oas3 parses the 3.1 object model strictly
    // enough to catch wrong shapes: parameters, responses, schemas, security).
    let spec = oas3::from_json(&served).expect("valid OpenAPI 3.1");
    assert!(spec.openapi.starts_with("3.1"), "{}", spec.openapi);
    let paths = spec.paths.as_ref().expect("paths");
    let mut documented = BTreeSet::new();
    for (path, item) in paths {
        for (method, op) in [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("DELETE", &item.delete),
            ("PATCH", &item.patch),
        ] {
            if let Some(op) = op {
                documented.insert((method.to_string(), path.clone()));
                assert!(
                    op.operation_id.is_some(),
                    "{method} {path} has no operationId"
                );
                assert!(
                    op.responses.as_ref().is_some_and(|r| r.contains_key("401")),
                    "{method} {path} lacks 401"
                );
            }
        }
    }
    let expected: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, expected);

    // Bearer auth is declared and required globally; every problem type has a stable URI.
    let doc: serde_json::Value = serde_json::from_str(&served).expect("json");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(doc["security"][0]["bearer"], serde_json::json!([]));
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    assert!(doc["components"]["schemas"]["SubmitMetadata"].is_object());
}

#[tokio::test]
async fn every_documented_route_is_served_and_nothing_else() {
    let api = Api::start().await;
    for (method, path) in ROUTES {
        let concrete = path.replace("{id}", "x@y").replace("{name}", "n");
        // Without a token a served route answers 401 (the router matched it); an unserved
        // one would be 404 or 405.
        let resp = api
            .client
            .request(method.parse().expect("method"), api.url(&concrete))
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 401, "{method} {path}");
    }
    // Methods not in the document are not served.
    for (method, path) in [
        ("DELETE", "/api/v1/messages/x@y"),
        ("PUT", "/api/v1/messages"),
        ("POST", "/api/v1/health"),
    ] {
        let resp = api
            .client
            .request(method.parse().expect("method"), api.url(path))
            .bearer_auth(RED_TOKEN)
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 405, "{method} {path}");
    }
}
