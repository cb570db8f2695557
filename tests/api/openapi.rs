//! The OpenAPI document (`GET /api/openapi.json`) and the request rules it states: every
//! route is described with its errors and auth, a 405 names the methods the document lists,
//! and parameters are taken only in the types the document gives them.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

/// Every operation of the server: (route as the document writes it, method).
const OPERATIONS: &[(&str, &str)] = &[
    ("/api/files", "get"),
    ("/api/files", "post"),
    ("/api/files", "put"),
    ("/api/files", "delete"),
    ("/api/files/copy", "put"),
    ("/api/files/meta", "patch"),
    ("/api/files/meta", "post"),
    ("/api/files/meta", "delete"),
    ("/api/files/search", "get"),
    ("/api/files/token", "post"),
    ("/api/files/sign-urls", "post"),
    ("/api/files/from-url", "post"),
    ("/api/folders", "get"),
    ("/api/folders", "post"),
    ("/api/folders", "put"),
    ("/api/folders", "delete"),
    ("/api/folders/copy", "put"),
    ("/api/health", "get"),
    ("/api/openapi.json", "get"),
    ("/project/uploads/{path}", "get"),
    ("/project/uploads/{path}", "head"),
    ("/media/{name}", "get"),
    ("/media/{name}", "head"),
];

async fn document(app: &TestApp) -> Value {
    let res = app
        .client
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/json");
    res.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_document_is_openapi_3_1_and_describes_every_operation_with_its_errors_and_auth() {
    let mut app = spawn_app().await;
    let doc = document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    for scheme in ["token", "bearer", "access_token", "x_access_token"] {
        assert!(schemes.contains_key(scheme), "security scheme {scheme}");
    }
    let paths = doc["paths"].as_object().unwrap();
    let documented: usize = paths
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert_eq!(documented, OPERATIONS.len(), "paths: {:?}", paths.keys());
    let mut ids = std::collections::HashSet::new();
    for (route, method) in OPERATIONS {
        let op = &doc["paths"][route][method];
        assert!(op.is_object(), "{method} {route} is not described");
        let id = op["operationId"].as_str().unwrap().to_string();
        // GET and HEAD of one handler share their id; anything else must be unique.
        assert!(
            ids.insert(id.clone()) || *method == "head",
            "{method} {route}: operationId {id} is used twice"
        );
        let responses = op["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{method} {route}: no success answer"
        );
        for (status, response) in responses {
            if status.starts_with('4') && !["412", "416"].contains(&status.as_str()) {
                assert_eq!(
                    response["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/Error",
                    "{method} {route} {status}: errors carry the Error body"
                );
            }
        }
        if route.starts_with("/api/") && !route.ends_with("health") && !route.ends_with(".json") {
            for status in ["400", "401", "403", "429", "500"] {
                assert!(
                    responses.contains_key(status),
                    "{method} {route} does not describe {status}"
                );
            }
            let security = op["security"].as_array().unwrap();
            let needs_access = security.iter().all(|alt| {
                alt.as_object()
                    .unwrap()
                    .keys()
                    .any(|k| k.contains("access"))
            });
            let writes = !["get", "head"].contains(method)
                && !route.ends_with("/token")
                && !route.ends_with("/sign-urls");
            assert_eq!(
                needs_access, writes,
                "{method} {route}: security {security:?}"
            );
        }
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_405_names_the_methods_the_document_lists_in_allow() {
    let mut app = spawn_app().await;
    for (route, method, allow) in [
        ("/api/files", Method::PATCH, "GET, POST, PUT, DELETE"),
        ("/api/health", Method::POST, "GET"),
        ("/api/files/search", Method::DELETE, "GET"),
        ("/project/uploads/logo.png", Method::POST, "GET, HEAD"),
    ] {
        let res = app
            .client
            .request(method.clone(), app.url(route))
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.headers().get("allow").unwrap(),
            allow,
            "{method} {route}"
        );
        assert_error(res, StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed").await;
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn parameters_of_the_wrong_json_type_are_refused_not_coerced() {
    let mut app = spawn_app().await;
    app.uploaded("sub", "b.txt", b"b").await;
    // A number where a path string belongs names no folder "5".
    let res = app
        .call(Method::POST, "/api/folders", json!({"path": 5}))
        .await;
    assert_error(res, StatusCode::BAD_REQUEST, "invalid-parameter").await;
    assert!(!app.uploads().join("5").exists());
    // A misspelt flag is an error, not "no": a recursive delete is never guessed.
    app.called(Method::POST, "/api/folders", json!({"path": "full"}))
        .await;
    app.put_file("full/x.txt", b"x");
    for recursive in [json!("ture"), json!(2), json!(["true"])] {
        let res = app
            .call(
                Method::DELETE,
                "/api/folders",
                json!({"path": "full", "recursive": recursive}),
            )
            .await;
        assert_error(res, StatusCode::BAD_REQUEST, "invalid-parameter").await;
        assert!(app.uploads().join("full/x.txt").exists());
    }
    // Every spelling the document lists is read.
    for (flag, listed) in [("TRUE", true), ("on", true), ("0", false), ("", false)] {
        let res = app
            .get_api("/api/files", &[("path", ""), ("recursive", flag)])
            .await;
        assert_eq!(res.status(), StatusCode::OK, "recursive={flag}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(
            body["data"]["sub/b.txt"].is_object(),
            listed,
            "recursive={flag}: {body}"
        );
    }
    // Read whether or not the call's path needs them: a folder object takes no `recursive`,
    // a file takes no `limit`, and still a bad one is refused.
    for (route, query) in [
        ("/api/files/search", [("q", "b"), ("limit", "1.5")]),
        (
            "/api/folders",
            [("path", ""), ("recursive", "18014398509481985")],
        ),
        ("/api/files", [("path", "sub/b.txt"), ("limit", "-1")]),
    ] {
        let res = app.get_api(route, &query).await;
        assert_error(res, StatusCode::BAD_REQUEST, "invalid-parameter").await;
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_parameter_and_a_header_that_disagree_are_refused() {
    let mut app = spawn_app().await;
    let other = "0123456789abcdef0123456789abcdef";
    let res = app
        .client
        .get(app.url("/api/files"))
        .query(&[("path", ""), ("token", app.files_token.as_str())])
        .bearer_auth(other)
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::UNAUTHORIZED, "token-conflict").await;
    let res = app
        .client
        .post(app.url("/api/folders"))
        .bearer_auth(&app.files_token)
        .header("X-Access-Token", other)
        .json(&json!({"path": "x", "access_token": app.access_token}))
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::UNAUTHORIZED, "token-conflict").await;
    assert!(!app.uploads().join("x").exists());
    // The same token in both places is one token.
    let res = app
        .client
        .get(app.url("/api/files"))
        .query(&[("path", ""), ("token", app.files_token.as_str())])
        .bearer_auth(&app.files_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    app.stop().await;
}
