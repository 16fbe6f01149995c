//! The routes of `template.yaml`, read at start, so local and deployed routing cannot drift.
//!
//! From every `AWS::Serverless::Function` it takes the binary (`Metadata.BuildProperties.Binary`)
//! and its `HttpApi` events: path, method, and whether `Auth.Authorizer: NONE` makes the route
//! public. An event without path and method is the `$default` route. From the
//! `AWS::Serverless::HttpApi` it takes the default authorizer's function.

use std::collections::BTreeMap;

use serde_yaml_ng::Value;

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template.yaml is not valid YAML: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
    #[error("template.yaml: {0}")]
    Shape(String),
}

fn shape(message: impl Into<String>) -> TemplateError {
    TemplateError::Shape(message.into())
}

/// One route of the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Upper-case method, or `ANY`.
    pub method: String,
    /// The path pattern with `{name}` segments; `None` for the `$default` route.
    pub path: Option<String>,
    /// The function's binary, e.g. `login`.
    pub function: String,
    /// Whether the API's authorizer runs first.
    pub protected: bool,
}

impl Route {
    /// API Gateway's route key: `POST /auth/login`, or `$default`.
    pub fn key(&self) -> String {
        match &self.path {
            Some(path) => format!("{} {path}", self.method),
            None => "$default".to_owned(),
        }
    }
}

/// Where a request goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolution<'a> {
    Route {
        route: &'a Route,
        path_parameters: BTreeMap<String, String>,
    },
    /// Nothing matches and there is no `$default` route: API Gateway's own 404.
    NotFound,
}

#[derive(Debug, Clone)]
pub struct RouteTable {
    routes: Vec<Route>,
    catch_all: Option<Route>,
    authorizer: Option<String>,
}

fn text<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

/// The logical id a `!GetAtt Name.Arn` or `{"Fn::GetAtt": [Name, Arn]}` points at.
fn get_att_target(value: &Value) -> Option<String> {
    match value {
        Value::Tagged(tagged) if tagged.tag == "GetAtt" => tagged
            .value
            .as_str()
            .and_then(|s| s.split('.').next())
            .map(str::to_owned),
        Value::Mapping(map) => map
            .get("Fn::GetAtt")
            .and_then(|v| v.get(0))
            .and_then(Value::as_str)
            .map(str::to_owned),
        _ => None,
    }
}

impl RouteTable {
    pub fn from_template(yaml: &str) -> Result<Self, TemplateError> {
        let template: Value = serde_yaml_ng::from_str(yaml)?;
        let resources = template
            .get("Resources")
            .and_then(Value::as_mapping)
            .ok_or_else(|| shape("no Resources"))?;

        let binary_of = |logical_id: &str| -> Option<String> {
            let resource = resources.get(logical_id)?;
            text(resource.get("Metadata")?.get("BuildProperties")?, "Binary").map(str::to_owned)
        };

        let apis: Vec<&Value> = resources
            .values()
            .filter(|r| text(r, "Type") == Some("AWS::Serverless::HttpApi"))
            .collect();
        let [api] = apis.as_slice() else {
            return Err(shape(format!(
                "expected one AWS::Serverless::HttpApi, found {}",
                apis.len()
            )));
        };
        let auth = api.get("Properties").and_then(|p| p.get("Auth"));
        let authorizer = match auth.and_then(|a| text(a, "DefaultAuthorizer")) {
            None => None,
            Some(name) => {
                let function_arn = auth
                    .and_then(|a| a.get("Authorizers"))
                    .and_then(|a| a.get(name))
                    .and_then(|a| a.get("FunctionArn"))
                    .ok_or_else(|| shape(format!("authorizer {name} has no FunctionArn")))?;
                let target = get_att_target(function_arn).ok_or_else(|| {
                    shape(format!("authorizer {name}: FunctionArn is not a !GetAtt"))
                })?;
                Some(
                    binary_of(&target)
                        .ok_or_else(|| shape(format!("{target} has no BuildProperties.Binary")))?,
                )
            }
        };

        let mut routes = Vec::new();
        let mut catch_all = None;
        for (logical_id, resource) in resources {
            if text(resource, "Type") != Some("AWS::Serverless::Function") {
                continue;
            }
            let name = logical_id.as_str().unwrap_or_default();
            let events = resource
                .get("Properties")
                .and_then(|p| p.get("Events"))
                .and_then(Value::as_mapping);
            for event in events.into_iter().flat_map(|events| events.values()) {
                if text(event, "Type") != Some("HttpApi") {
                    continue;
                }
                let function = binary_of(name)
                    .ok_or_else(|| shape(format!("{name} has no BuildProperties.Binary")))?;
                let properties = event.get("Properties");
                let public = properties
                    .and_then(|p| p.get("Auth"))
                    .and_then(|a| text(a, "Authorizer"))
                    .is_some_and(|a| a == "NONE");
                let protected = authorizer.is_some() && !public;
                let path = properties.and_then(|p| text(p, "Path")).map(str::to_owned);
                let method = properties
                    .and_then(|p| text(p, "Method"))
                    .map(str::to_ascii_uppercase);
                match (path, method) {
                    (None, None) => {
                        catch_all = Some(Route {
                            method: "ANY".into(),
                            path: None,
                            function,
                            protected,
                        })
                    }
                    (Some(path), method) => routes.push(Route {
                        method: method.unwrap_or_else(|| "ANY".into()),
                        path: Some(path),
                        function,
                        protected,
                    }),
                    (None, Some(_)) => {
                        return Err(shape(format!(
                            "{name}: an HttpApi event with a method needs a path"
                        )));
                    }
                }
            }
        }
        Ok(Self {
            routes,
            catch_all,
            authorizer,
        })
    }

    /// Every route, the `$default` one last.
    pub fn routes(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter().chain(&self.catch_all)
    }

    /// The authorizer's binary, when the API has a default authorizer.
    pub fn authorizer(&self) -> Option<&str> {
        self.authorizer.as_deref()
    }

    /// Matches like API Gateway: a route whose method and path both match, else `$default`.
    pub fn resolve(&self, method: &str, path: &str) -> Resolution<'_> {
        for route in &self.routes {
            if route.method != "ANY" && route.method != method {
                continue;
            }
            if let Some(path_parameters) = route
                .path
                .as_deref()
                .and_then(|pattern| match_path(pattern, path))
            {
                return Resolution::Route {
                    route,
                    path_parameters,
                };
            }
        }
        match &self.catch_all {
            Some(route) => Resolution::Route {
                route,
                path_parameters: BTreeMap::new(),
            },
            None => Resolution::NotFound,
        }
    }
}

/// The path parameters if `path` matches `pattern`.
fn match_path(pattern: &str, path: &str) -> Option<BTreeMap<String, String>> {
    let mut parameters = BTreeMap::new();
    let mut pattern_segments = pattern.split('/');
    let mut path_segments = path.split('/');
    loop {
        match (pattern_segments.next(), path_segments.next()) {
            (None, None) => return Some(parameters),
            (Some(p), Some(s)) if p.starts_with('{') && p.ends_with('}') && !s.is_empty() => {
                parameters.insert(p[1..p.len() - 1].to_owned(), s.to_owned());
            }
            (Some(p), Some(s)) if p == s => {}
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r#"
Resources:
  Api:
    Type: AWS::Serverless::HttpApi
    Properties:
      Auth:
        DefaultAuthorizer: A
        Authorizers:
          A:
            FunctionArn: !GetAtt AuthFn.Arn
  AuthFn:
    Type: AWS::Serverless::Function
    Metadata: {BuildProperties: {Binary: authorizer}}
  Open:
    Type: AWS::Serverless::Function
    Metadata: {BuildProperties: {Binary: open}}
    Properties:
      Events:
        E: {Type: HttpApi, Properties: {Path: /open, Method: post, Auth: {Authorizer: NONE}}}
        Fallback: {Type: HttpApi, Properties: {Auth: {Authorizer: NONE}}}
  Closed:
    Type: AWS::Serverless::Function
    Metadata: {BuildProperties: {Binary: closed}}
    Properties:
      Events:
        E: {Type: HttpApi, Properties: {Path: "/things/{id}", Method: DELETE}}
"#;

    #[test]
    fn reads_routes_protection_and_the_authorizer() {
        let table = RouteTable::from_template(TEMPLATE).unwrap();
        assert_eq!(table.authorizer(), Some("authorizer"));
        let keys: Vec<_> = table
            .routes()
            .map(|r| (r.key(), r.function.clone(), r.protected))
            .collect();
        assert_eq!(
            keys,
            [
                ("POST /open".to_owned(), "open".to_owned(), false),
                ("DELETE /things/{id}".to_owned(), "closed".to_owned(), true),
                ("$default".to_owned(), "open".to_owned(), false),
            ]
        );
    }

    #[test]
    fn resolves_like_api_gateway() {
        let table = RouteTable::from_template(TEMPLATE).unwrap();
        match table.resolve("DELETE", "/things/42") {
            Resolution::Route {
                route,
                path_parameters,
            } => {
                assert_eq!(route.function, "closed");
                assert_eq!(path_parameters["id"], "42");
            }
            other => panic!("{other:?}"),
        }
        // Wrong method or unknown path: the $default route.
        for (method, path) in [
            ("GET", "/things/42"),
            ("POST", "/nowhere"),
            ("POST", "/open/"),
        ] {
            match table.resolve(method, path) {
                Resolution::Route { route, .. } => assert_eq!(route.path, None, "{method} {path}"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn without_a_default_route_unknown_paths_are_not_found() {
        let table = RouteTable::from_template(&TEMPLATE.replace(
            "        Fallback: {Type: HttpApi, Properties: {Auth: {Authorizer: NONE}}}\n",
            "",
        ))
        .unwrap();
        assert_eq!(table.resolve("GET", "/nowhere"), Resolution::NotFound);
    }

    #[test]
    fn broken_templates_are_explained() {
        assert!(RouteTable::from_template("Resources: [").is_err());
        assert!(
            RouteTable::from_template("Foo: 1")
                .unwrap_err()
                .to_string()
                .contains("no Resources")
        );
        let no_binary = TEMPLATE.replace(
            "Metadata: {BuildProperties: {Binary: closed}}",
            "Metadata: {}",
        );
        assert!(
            RouteTable::from_template(&no_binary)
                .unwrap_err()
                .to_string()
                .contains("Closed")
        );
    }
}
