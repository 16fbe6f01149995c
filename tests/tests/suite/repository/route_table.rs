//! The one route table (`shared::routes::ROUTES`) against everything else that names routes,
//! functions or tables: `template.yaml`, `openapi.yaml`, `events/`, `functions/`, and the
//! stores' schema. Each failure names the file to edit.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use integration_tests::openapi::OpenApi;
use integration_tests::template::{KeyAttribute, TableShape, repository_template};
use serde_json::Value;
use shared::routes::{Function, ROUTES, Route};
use shared::store::schema::{self, TableSchema};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Where a function's template resource is, or where it should be.
fn function_resource(binary: &str) -> String {
    match repository_template().function_id(binary) {
        Some(id) => format!("template.yaml: {id}"),
        None => format!("template.yaml: the AWS::Serverless::Function with Binary: {binary}"),
    }
}

#[test]
fn the_template_declares_every_route_of_the_table_and_no_other() {
    let template = repository_template();
    for route in ROUTES {
        let binary = route.function.binary();
        let declared = template.routes.iter().find(|r| r.key() == route.key());
        let Some(declared) = declared else {
            panic!(
                "{}: add an HttpApi event for `{}` (ApiId: !Ref AuthApi{})",
                function_resource(binary),
                route.key(),
                if route.is_protected() {
                    ""
                } else {
                    ", Auth: {Authorizer: NONE}"
                }
            );
        };
        assert_eq!(
            declared.function,
            binary,
            "{}: `{}` belongs to the function with Binary: {binary} (shared/src/routes.rs)",
            function_resource(&declared.function),
            route.key()
        );
        assert_eq!(
            declared.protected,
            route.is_protected(),
            "{}: `{}` must be {} (shared/src/routes.rs says so)",
            function_resource(binary),
            route.key(),
            if route.is_protected() {
                "protected: remove `Auth: {Authorizer: NONE}`"
            } else {
                "public: add `Auth: {Authorizer: NONE}`"
            }
        );
    }
    for declared in &template.routes {
        assert!(
            ROUTES.iter().any(|r| r.key() == declared.key()),
            "template.yaml declares `{}`, which shared/src/routes.rs (ROUTES) does not have",
            declared.key()
        );
    }
}

#[test]
fn the_templates_authorizer_is_the_authorizer_function() {
    let template = repository_template();
    assert_eq!(
        template.authorizer.as_deref(),
        Some(Function::Authorizer.binary()),
        "template.yaml: AuthApi's DefaultAuthorizer must be the function with Binary: authorizer"
    );
}

#[test]
fn every_function_has_a_binary_and_a_template_resource() {
    let template = repository_template();
    let built: BTreeSet<&str> = template.functions.values().map(String::as_str).collect();
    for function in Function::ALL {
        let binary = function.binary();
        assert!(
            built.contains(binary),
            "template.yaml: add an AWS::Serverless::Function with Metadata.BuildProperties.Binary: {binary}"
        );
        let main = repository().join(format!("functions/{binary}/src/main.rs"));
        let source = std::fs::read_to_string(&main)
            .unwrap_or_else(|_| panic!("functions/{binary}/src/main.rs: create the function"));
        let wiring = match function {
            Function::Authorizer => "serve_authorizer".to_owned(),
            _ => format!("Function::{function:?}.routes()"),
        };
        assert!(
            source.contains(&wiring),
            "functions/{binary}/src/main.rs must serve {wiring}"
        );
    }
    for binary in &built {
        assert!(
            Function::from_binary(binary).is_some(),
            "template.yaml builds {binary}, which shared/src/routes.rs (Function) does not know"
        );
    }
    let directories: BTreeSet<String> = std::fs::read_dir(repository().join("functions"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for directory in &directories {
        assert!(
            Function::from_binary(directory).is_some(),
            "functions/{directory} is no Function of shared/src/routes.rs"
        );
    }
}

#[test]
fn openapi_documents_every_route_of_the_table_and_no_other() {
    let documented: BTreeSet<(String, String)> = OpenApi::load().operations().into_iter().collect();
    let served: Vec<&Route> = ROUTES.iter().filter(|r| !r.is_default()).collect();
    for route in &served {
        assert!(
            documented.contains(&(route.method.to_owned(), route.path.to_owned())),
            "openapi.yaml: document `{}` under paths",
            route.key()
        );
    }
    for (method, path) in &documented {
        assert!(
            served.iter().any(|r| r.method == method && r.path == path),
            "openapi.yaml documents `{method} {path}`, which shared/src/routes.rs (ROUTES) does not have"
        );
    }
}

use integration_tests::function_of_event;

#[test]
fn every_function_has_an_event_file() {
    let mut events: BTreeMap<Function, Vec<String>> = BTreeMap::new();
    for entry in std::fs::read_dir(repository().join("events")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(repository().join("events").join(&name)).unwrap();
        let event: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("events/{name}: {e}"));
        events
            .entry(function_of_event(&name, &event))
            .or_default()
            .push(name);
    }
    for function in Function::ALL {
        assert!(
            events.contains_key(function),
            "events/: add a sample event for the {} function (for sam local invoke)",
            function.binary()
        );
    }
}

fn expected_shape(schema: &TableSchema) -> TableShape {
    let key = |k: &schema::Key| -> KeyAttribute { (k.name.to_owned(), k.kind.code().to_owned()) };
    TableShape {
        partition_key: key(&schema.partition_key),
        sort_key: schema.sort_key.as_ref().map(key),
        indexes: schema
            .indexes
            .iter()
            .map(|index| {
                (
                    index.name.to_owned(),
                    (
                        key(&index.partition_key),
                        index.sort_key.as_ref().map(key),
                        index.projection.code().to_owned(),
                    ),
                )
            })
            .collect(),
        ttl_attribute: schema.ttl_attribute.map(str::to_owned),
    }
}

#[test]
fn the_templates_tables_have_the_stores_schema() {
    let template = repository_template();
    for schema in schema::TABLES {
        let declared = template.tables.get(schema.logical_id).unwrap_or_else(|| {
            panic!(
                "template.yaml: add the AWS::DynamoDB::Table {}",
                schema.logical_id
            )
        });
        assert_eq!(
            declared,
            &expected_shape(schema),
            "template.yaml: {} differs from shared/src/store/schema.rs (keys, types, GSIs, TTL)",
            schema.logical_id
        );
    }
    assert_eq!(
        template.tables.len(),
        schema::TABLES.len(),
        "template.yaml has a table that shared/src/store/schema.rs does not describe"
    );
}

/// What DynamoDB reports for a table, in the template's terms.
async fn described_shape(client: &aws_sdk_dynamodb::Client, table: &str) -> TableShape {
    let described = client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .unwrap();
    let table_description = described.table().unwrap();
    let types: BTreeMap<&str, &str> = table_description
        .attribute_definitions()
        .iter()
        .map(|a| (a.attribute_name(), a.attribute_type().as_str()))
        .collect();
    let keys = |elements: &[aws_sdk_dynamodb::types::KeySchemaElement]| {
        let find = |kind: &str| {
            elements
                .iter()
                .find(|e| e.key_type().as_str() == kind)
                .map(|e| {
                    let name = e.attribute_name();
                    (name.to_owned(), types[name].to_owned())
                })
        };
        (find("HASH").unwrap(), find("RANGE"))
    };
    let (partition_key, sort_key) = keys(table_description.key_schema());
    let indexes = table_description
        .global_secondary_indexes()
        .iter()
        .map(|index| {
            let (partition, sort) = keys(index.key_schema());
            let projection = index
                .projection()
                .and_then(|p| p.projection_type())
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default();
            (
                index.index_name().unwrap().to_owned(),
                (partition, sort, projection),
            )
        })
        .collect();
    let ttl = client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .unwrap();
    let ttl_attribute = ttl
        .time_to_live_description()
        .filter(|d| {
            d.time_to_live_status()
                .is_some_and(|s| s.as_str() == "ENABLED")
        })
        .and_then(|d| d.attribute_name())
        .map(str::to_owned);
    TableShape {
        partition_key,
        sort_key,
        indexes,
        ttl_attribute,
    }
}

#[tokio::test]
async fn create_tables_builds_the_schema() {
    let client = integration_tests::dynamo_client().await;
    let config = integration_tests::test_config();
    let store = shared::DynamoStore::new(
        client.clone(),
        &config.users_table,
        &config.sessions_table,
        &config.history_table,
    );
    store.create_tables().await.unwrap();
    for (table, schema) in [
        (&config.users_table, &schema::USERS),
        (&config.sessions_table, &schema::SESSIONS),
        (&config.history_table, &schema::HISTORY),
    ] {
        assert_eq!(
            described_shape(&client, table).await,
            expected_shape(schema),
            "{}",
            schema.logical_id
        );
    }
}
