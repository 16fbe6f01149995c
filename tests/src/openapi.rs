//! `openapi.yaml`, read as the API's machine-readable form: every reply of a test can be
//! checked against it (status documented, content type documented, body of the documented
//! shape: required fields, types, enums).

use serde_json::Value;

use crate::local::Reply;

pub struct OpenApi {
    doc: Value,
}

impl OpenApi {
    pub fn load() -> Self {
        let path = format!("{}/../openapi.yaml", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let yaml: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(&text).expect("openapi.yaml is YAML");
        Self {
            doc: serde_json::to_value(yaml).expect("openapi.yaml as JSON"),
        }
    }

    /// Every `(METHOD, path template)` the document describes.
    pub fn operations(&self) -> Vec<(String, String)> {
        let mut operations = Vec::new();
        for (path, item) in self.doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                operations.push((method.to_ascii_uppercase(), path.clone()));
            }
        }
        operations
    }

    fn resolve<'a>(&'a self, value: &'a Value) -> &'a Value {
        match value.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let pointer = reference.strip_prefix('#').expect("local $ref");
                self.resolve(
                    self.doc
                        .pointer(pointer)
                        .unwrap_or_else(|| panic!("dangling {reference}")),
                )
            }
            None => value,
        }
    }

    /// Checks a reply to `method path_template` against the document.
    pub fn check(&self, method: &str, path_template: &str, reply: &Reply) -> Result<(), String> {
        let operation = &self.doc["paths"][path_template][method.to_ascii_lowercase()];
        if operation.is_null() {
            return Err(format!("{method} {path_template} is not in openapi.yaml"));
        }
        let status = reply.status.to_string();
        let response = operation["responses"]
            .get(&status)
            .map(|r| self.resolve(r))
            .ok_or_else(|| {
                format!("{method} {path_template}: status {status} is not documented")
            })?;
        let Some(content) = response.get("content").and_then(Value::as_object) else {
            return if reply.body.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{method} {path_template} {status}: documented without a body, got one"
                ))
            };
        };
        let media = reply
            .content_type()
            .map(|ct| ct.split(';').next().unwrap_or_default().trim().to_owned())
            .unwrap_or_default();
        let media_type = content.get(&media).ok_or_else(|| {
            format!("{method} {path_template} {status}: content type {media:?} is not documented")
        })?;
        // A documented media type without a schema (the HTML pages): the type is the check.
        let Some(schema) = media_type.get("schema") else {
            return Ok(());
        };
        let body: Value = serde_json::from_slice(&reply.body)
            .map_err(|e| format!("{method} {path_template} {status}: body is not JSON: {e}"))?;
        self.check_schema(schema, &body, "$")
            .map_err(|e| format!("{method} {path_template} {status}: {e}"))
    }

    fn check_schema(&self, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
        let schema = self.resolve(schema);
        if let Some(any) = schema.get("anyOf").and_then(Value::as_array) {
            let errors: Vec<String> = any
                .iter()
                .filter_map(|option| self.check_schema(option, value, at).err())
                .collect();
            if errors.len() == any.len() {
                return Err(format!(
                    "{at}: matches no alternative: {}",
                    errors.join("; ")
                ));
            }
        }
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            for part in all {
                self.check_schema(part, value, at)?;
            }
        }
        if let Some(kind) = schema.get("type").and_then(Value::as_str) {
            let ok = match kind {
                "object" => value.is_object(),
                "array" => value.is_array(),
                "string" => value.is_string(),
                "integer" => value.is_i64() || value.is_u64(),
                "boolean" => value.is_boolean(),
                "number" => value.is_number(),
                other => return Err(format!("{at}: unsupported schema type {other}")),
            };
            if !ok {
                return Err(format!("{at}: expected {kind}, got {value}"));
            }
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
            && !allowed.contains(value)
        {
            return Err(format!("{at}: {value} is not one of {allowed:?}"));
        }
        for field in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let field = field.as_str().unwrap_or_default();
            if value.get(field).is_none() {
                return Err(format!("{at}: required field {field:?} is missing"));
            }
        }
        if let (Some(properties), Some(object)) = (
            schema.get("properties").and_then(Value::as_object),
            value.as_object(),
        ) {
            for (name, property) in properties {
                if let Some(field) = object.get(name) {
                    self.check_schema(property, field, &format!("{at}.{name}"))?;
                }
            }
        }
        if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
            for (i, item) in array.iter().enumerate() {
                self.check_schema(items, item, &format!("{at}[{i}]"))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use hyper::header::{HeaderMap, HeaderValue};

    fn reply(status: u16, content_type: &str, body: &str) -> Reply {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_str(content_type).unwrap());
        Reply {
            status,
            headers,
            body: Bytes::from(body.to_owned()),
        }
    }

    const USER: &str = r#"{"user":{"id":"6f1d0c52-8d0e-4c55-9a34-2b8f3c1e7a10","email":"a@b.co","email_verified":false,"mfa_enabled":false,"is_active":true,"created_at":"2026-11-27T14:00:00Z","updated_at":"2026-11-27T14:00:00Z"}}"#;

    #[test]
    fn accepts_a_documented_reply() {
        OpenApi::load()
            .check("GET", "/auth/me", &reply(200, "application/json", USER))
            .unwrap();
        let external =
            r#"{"user":{"id":"abc","email":"e@x.co"},"issuer":"https://app","external":true}"#;
        OpenApi::load()
            .check("GET", "/auth/me", &reply(200, "application/json", external))
            .unwrap();
        let half = r#"{"user":{"id":"abc"},"issuer":"https://app","external":true}"#;
        assert!(
            OpenApi::load()
                .check("GET", "/auth/me", &reply(200, "application/json", half))
                .is_err()
        );
    }

    #[test]
    fn refuses_what_the_document_does_not_say() {
        let spec = OpenApi::load();
        let missing = USER.replace(r#""email":"a@b.co","#, "");
        assert!(
            spec.check("GET", "/auth/me", &reply(200, "application/json", &missing))
                .unwrap_err()
                .contains("email")
        );
        let wrong_type = USER.replace("true", "\"yes\"");
        assert!(
            spec.check(
                "GET",
                "/auth/me",
                &reply(200, "application/json", &wrong_type)
            )
            .is_err()
        );
        assert!(
            spec.check("GET", "/auth/me", &reply(418, "application/json", USER))
                .unwrap_err()
                .contains("418")
        );
        assert!(
            spec.check("GET", "/auth/me", &reply(200, "text/plain", USER))
                .is_err()
        );
        assert!(
            spec.check(
                "GET",
                "/auth/nothing",
                &reply(200, "application/json", USER)
            )
            .is_err()
        );
        let bad_code =
            r#"{"type":"about:blank","title":"t","status":401,"code":"nope","detail":"d"}"#;
        assert!(
            spec.check(
                "POST",
                "/auth/login",
                &reply(401, "application/problem+json", bad_code)
            )
            .is_err()
        );
        assert!(
            spec.check(
                "POST",
                "/auth/logout",
                &reply(204, "application/json", "{}")
            )
            .is_err()
        );
    }
}
