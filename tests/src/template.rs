//! `template.yaml` as the tests read it, to hold it to the route table and the stores' schema.
//!
//! From every `AWS::Serverless::Function` it takes the binary (`Metadata.BuildProperties.Binary`)
//! and its `HttpApi` events: path, method, and whether `Auth.Authorizer: NONE` makes the route
//! public. An event without path and method is the `$default` route. From the
//! `AWS::Serverless::HttpApi` it takes the default authorizer's function. From every
//! `AWS::DynamoDB::Table` its keys, attribute types, GSIs and TTL attribute.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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

/// The template shipped with this repository.
pub fn template_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml")
}

/// The repository's template, parsed.
pub fn repository_template() -> Template {
    let text = std::fs::read_to_string(template_path()).expect("template.yaml");
    Template::parse(&text).expect("template.yaml")
}

/// One route as the template declares it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TemplateRoute {
    /// Upper-case method, or `ANY`.
    pub method: String,
    /// The path pattern with `{name}` segments; `None` for the `$default` route.
    pub path: Option<String>,
    /// The function's binary, e.g. `login`.
    pub function: String,
    /// Whether the API's authorizer runs first.
    pub protected: bool,
}

impl TemplateRoute {
    /// API Gateway's route key: `POST /auth/login`, or `$default`.
    pub fn key(&self) -> String {
        match &self.path {
            Some(path) => format!("{} {path}", self.method),
            None => "$default".to_owned(),
        }
    }
}

/// A key or index key: attribute name and its DynamoDB type (`S`, `N`, `B`).
pub type KeyAttribute = (String, String);

/// A table's shape, as far as the stores depend on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableShape {
    pub partition_key: KeyAttribute,
    pub sort_key: Option<KeyAttribute>,
    /// Index name → (partition key, sort key, projection type).
    pub indexes: BTreeMap<String, (KeyAttribute, Option<KeyAttribute>, String)>,
    pub ttl_attribute: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Template {
    pub routes: Vec<TemplateRoute>,
    /// The authorizer's binary, when the API has a default authorizer.
    pub authorizer: Option<String>,
    /// Every function's binary, by logical id.
    pub functions: BTreeMap<String, String>,
    /// Every table's shape, by logical id.
    pub tables: BTreeMap<String, TableShape>,
    pub raw: Value,
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

impl Template {
    pub fn parse(yaml: &str) -> Result<Self, TemplateError> {
        let raw: Value = serde_yaml_ng::from_str(yaml)?;
        let resources = raw
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
        let mut functions = BTreeMap::new();
        let mut tables = BTreeMap::new();
        for (logical_id, resource) in resources {
            let name = logical_id.as_str().unwrap_or_default();
            match text(resource, "Type") {
                Some("AWS::Serverless::Function") => {}
                Some("AWS::DynamoDB::Table") => {
                    tables.insert(name.to_owned(), table_shape(name, resource)?);
                    continue;
                }
                _ => continue,
            }
            let function = binary_of(name)
                .ok_or_else(|| shape(format!("{name} has no BuildProperties.Binary")))?;
            functions.insert(name.to_owned(), function.clone());
            let events = resource
                .get("Properties")
                .and_then(|p| p.get("Events"))
                .and_then(Value::as_mapping);
            for event in events.into_iter().flat_map(|events| events.values()) {
                if text(event, "Type") != Some("HttpApi") {
                    continue;
                }
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
                if path.is_none() && method.is_some() {
                    return Err(shape(format!(
                        "{name}: an HttpApi event with a method needs a path"
                    )));
                }
                routes.push(TemplateRoute {
                    method: method.unwrap_or_else(|| "ANY".into()),
                    path,
                    function: function.clone(),
                    protected,
                });
            }
        }
        Ok(Self {
            routes,
            authorizer,
            functions,
            tables,
            raw,
        })
    }

    /// The logical id of the function built from `binary`.
    pub fn function_id(&self, binary: &str) -> Option<&str> {
        self.functions
            .iter()
            .find(|(_, b)| b.as_str() == binary)
            .map(|(id, _)| id.as_str())
    }

    /// A resource by logical id.
    pub fn resource(&self, logical_id: &str) -> &Value {
        &self.raw["Resources"][logical_id]
    }
}

fn table_shape(name: &str, resource: &Value) -> Result<TableShape, TemplateError> {
    let properties = resource
        .get("Properties")
        .ok_or_else(|| shape(format!("{name} has no Properties")))?;
    let types: BTreeMap<String, String> = properties
        .get("AttributeDefinitions")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(|a| {
            Some((
                text(a, "AttributeName")?.to_owned(),
                text(a, "AttributeType")?.to_owned(),
            ))
        })
        .collect();
    let keys = |schema: Option<&Value>, what: &str| {
        let mut partition = None;
        let mut sort = None;
        for element in schema.and_then(Value::as_sequence).into_iter().flatten() {
            let attribute = text(element, "AttributeName")
                .unwrap_or_default()
                .to_owned();
            let kind = types.get(&attribute).cloned().ok_or_else(|| {
                shape(format!(
                    "{name}: {what} key {attribute} is not in AttributeDefinitions"
                ))
            })?;
            match text(element, "KeyType") {
                Some("HASH") => partition = Some((attribute, kind)),
                Some("RANGE") => sort = Some((attribute, kind)),
                other => return Err(shape(format!("{name}: {what}: key type {other:?}"))),
            }
        }
        let partition =
            partition.ok_or_else(|| shape(format!("{name}: {what} has no HASH key")))?;
        Ok((partition, sort))
    };
    let (partition_key, sort_key) = keys(properties.get("KeySchema"), "table")?;
    let mut indexes = BTreeMap::new();
    for index in properties
        .get("GlobalSecondaryIndexes")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
    {
        let index_name = text(index, "IndexName").unwrap_or_default().to_owned();
        let (partition, sort) = keys(index.get("KeySchema"), &index_name)?;
        let projection = index
            .get("Projection")
            .and_then(|p| text(p, "ProjectionType"))
            .unwrap_or_default()
            .to_owned();
        indexes.insert(index_name, (partition, sort, projection));
    }
    let ttl_attribute = properties
        .get("TimeToLiveSpecification")
        .filter(|t| t.get("Enabled").and_then(Value::as_bool) == Some(true))
        .and_then(|t| text(t, "AttributeName"))
        .map(str::to_owned);
    Ok(TableShape {
        partition_key,
        sort_key,
        indexes,
        ttl_attribute,
    })
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
  Things:
    Type: AWS::DynamoDB::Table
    Properties:
      AttributeDefinitions:
        - {AttributeName: pk, AttributeType: S}
        - {AttributeName: owner, AttributeType: S}
        - {AttributeName: at, AttributeType: N}
      KeySchema: [{AttributeName: pk, KeyType: HASH}]
      GlobalSecondaryIndexes:
        - IndexName: by_owner
          KeySchema: [{AttributeName: owner, KeyType: HASH}, {AttributeName: at, KeyType: RANGE}]
          Projection: {ProjectionType: ALL}
      TimeToLiveSpecification: {AttributeName: expires_at, Enabled: true}
"#;

    #[test]
    fn reads_routes_protection_and_the_authorizer() {
        let template = Template::parse(TEMPLATE).unwrap();
        assert_eq!(template.authorizer.as_deref(), Some("authorizer"));
        let keys: Vec<_> = template
            .routes
            .iter()
            .map(|r| (r.key(), r.function.clone(), r.protected))
            .collect();
        assert_eq!(
            keys,
            [
                ("POST /open".to_owned(), "open".to_owned(), false),
                ("$default".to_owned(), "open".to_owned(), false),
                ("DELETE /things/{id}".to_owned(), "closed".to_owned(), true),
            ]
        );
        assert_eq!(template.function_id("closed"), Some("Closed"));
    }

    #[test]
    fn reads_table_shapes() {
        let template = Template::parse(TEMPLATE).unwrap();
        let things = &template.tables["Things"];
        assert_eq!(things.partition_key, ("pk".to_owned(), "S".to_owned()));
        assert_eq!(things.sort_key, None);
        assert_eq!(things.ttl_attribute.as_deref(), Some("expires_at"));
        assert_eq!(
            things.indexes["by_owner"],
            (
                ("owner".to_owned(), "S".to_owned()),
                Some(("at".to_owned(), "N".to_owned())),
                "ALL".to_owned()
            )
        );
    }

    #[test]
    fn broken_templates_are_explained() {
        assert!(Template::parse("Resources: [").is_err());
        assert!(
            Template::parse("Foo: 1")
                .unwrap_err()
                .to_string()
                .contains("no Resources")
        );
        let no_binary = TEMPLATE.replace(
            "Metadata: {BuildProperties: {Binary: closed}}",
            "Metadata: {}",
        );
        assert!(
            Template::parse(&no_binary)
                .unwrap_err()
                .to_string()
                .contains("Closed")
        );
    }
}
