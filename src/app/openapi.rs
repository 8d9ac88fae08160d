//! The finishing touches of the OpenAPI document that no single handler owns:
//! where the API lives (`servers`), and the answers every operation can give
//! besides its own: problem JSON for bad input (400), credentials (401, 403), a
//! rate limit (429), and any other failure (`default`). Every error body is
//! `application/problem+json`, as the server sends it.

use serde_json::{json, Map, Value};

/// What every operation can answer besides its documented successes.
const COMMON: [(&str, &str); 5] = [
    (
        "400",
        "Bad input: a malformed path, query or body (`INVALID_PARAMS`)",
    ),
    (
        "401",
        "No valid credential (`NOT_AUTHENTICATED`, `INVALID_API_KEY`, `INVALID_TOKEN`, `SESSION_EXPIRED`)",
    ),
    (
        "403",
        "Not allowed: a missing scope, a device outside the credential's list, or a foreign Host or Origin",
    ),
    (
        "429",
        "Too many requests from this credential (`RATE_LIMITED`, `RATE_LIMIT_EXCEEDED`)",
    ),
    ("default", "Any other failure, as problem JSON with a `code`"),
];

/// Every UUID argument takes these forms (`ble::Uuid`'s parser): 16-bit, 32-bit or
/// 128-bit hex, with or without dashes, an optional `0x`, surrounding spaces.
const UUID_PATTERN: &str = r"^\s*(?:0[xX])?(?:[0-9A-Fa-f]{4}|[0-9A-Fa-f]{8}|[0-9A-Fa-f]{32}|[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})\s*$";

/// Arguments that are UUIDs wherever they appear.
const UUID_ARGUMENTS: [&str; 2] = ["service", "characteristic"];

/// Fills in `servers`, the UUID arguments' form and the common error answers, and
/// serves every error body as `application/problem+json`.
pub fn finish(mut doc: Value) -> Value {
    doc["servers"] = json!([{"url": "/api/v1", "description": "this gattway"}]);
    if let Some(items) = doc.pointer_mut("/components/schemas/ScanBody/properties/services/items") {
        items["pattern"] = json!(UUID_PATTERN);
    }
    // Exactly one of the two encodings.
    if let Some(body) = doc.pointer_mut("/components/schemas/WriteBody") {
        let given = |field: &str| json!({"required": [field], "properties": {field: {"type": "string"}}});
        body["oneOf"] = json!([given("hex"), given("base64")]);
    }
    let problem = json!({"schema": {"$ref": "#/components/schemas/Problem"}});
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return doc;
    };
    for item in paths.values_mut().filter_map(Value::as_object_mut) {
        for op in item.values_mut().filter_map(Value::as_object_mut) {
            for param in op
                .get_mut("parameters")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                let named = param["name"]
                    .as_str()
                    .is_some_and(|n| UUID_ARGUMENTS.contains(&n));
                if named {
                    param["schema"]["pattern"] = json!(UUID_PATTERN);
                }
            }
            let Some(responses) = op.entry("responses").or_insert_with(|| json!({})).as_object_mut() else {
                continue;
            };
            for (status, r) in responses.iter_mut() {
                if status.starts_with('2') {
                    continue;
                }
                // An error documented as JSON is sent as problem JSON.
                if let Some(content) = r.get_mut("content").and_then(Value::as_object_mut) {
                    if let Some(schema) = content.remove("application/json") {
                        content.insert("application/problem+json".into(), schema);
                    }
                } else if let Some(r) = r.as_object_mut() {
                    r.insert("content".into(), json!({"application/problem+json": problem}));
                }
            }
            for (status, description) in COMMON {
                responses.entry(status).or_insert_with(|| {
                    let mut r = Map::new();
                    r.insert("description".into(), json!(description));
                    r.insert("content".into(), json!({"application/problem+json": problem}));
                    Value::Object(r)
                });
            }
        }
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_is_problem_json_and_uuids_have_their_form() {
        let doc = finish(json!({
            "paths": {"/devices/{id}/characteristics/{service}/{characteristic}": {"get": {
                "parameters": [{"name": "service", "in": "path", "schema": {"type": "string"}}],
                "responses": {
                    "200": {"description": "ok", "content": {"application/json": {}}},
                    "409": {"description": "not connected", "content": {"application/json": {"schema": {}}}},
                    "404": {"description": "no such device"}
                }
            }}},
            "components": {"schemas": {"WriteBody": {"type": "object"}}}
        }));
        assert_eq!(doc["servers"][0]["url"], "/api/v1");
        let op = &doc["paths"]["/devices/{id}/characteristics/{service}/{characteristic}"]["get"];
        assert!(
            op["responses"]["200"]["content"]["application/json"].is_object(),
            "successes untouched"
        );
        for status in ["409", "404", "400", "401", "403", "429", "default"] {
            assert!(
                op["responses"][status]["content"]["application/problem+json"].is_object(),
                "{status}: {op}"
            );
            assert!(op["responses"][status]["content"]
                .get("application/json")
                .is_none());
        }
        assert_eq!(op["parameters"][0]["schema"]["pattern"], UUID_PATTERN);
        assert_eq!(
            doc["components"]["schemas"]["WriteBody"]["oneOf"][1]["required"][0],
            "base64"
        );
    }
}
