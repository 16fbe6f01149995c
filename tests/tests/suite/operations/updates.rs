//! What an update of one stack does to the routes of every stack: SAM defines an HTTP API from
//! an OpenAPI body, and CloudFormation re-imports that body whole whenever it changes, so a
//! route, integration or authorizer that is a resource of its own on such an API (of this stack
//! or another, attached through an exported id) is gone after the next release that changes the
//! API. The model below finds what each API's definition holds and what is attached beside it,
//! then updates each stack in turn; the repository's stacks (this one and `examples/orders`)
//! must come out of every update with every route they went in with.

use std::collections::{BTreeMap, BTreeSet};

use integration_tests::rie::repository;
use serde_yaml_ng::Value;

use super::tag;

/// An API, named by its stack and logical id.
type ApiName = (String, String);

/// One thing that makes a route work: a route, an integration or an authorizer, on an API.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Attachment {
    api: ApiName,
    /// The stack and resource (or function event) that declares it.
    owner: (String, String),
    /// Whether it lives in the API's definition (its body), or beside it as a resource.
    in_definition: bool,
}

struct Stack {
    name: String,
    template: Value,
}

impl Stack {
    fn read(name: &str, relative: &str) -> Stack {
        let text = std::fs::read_to_string(repository().join(relative))
            .unwrap_or_else(|e| panic!("{relative}: {e}"));
        Stack::parse(name, &text)
    }

    fn parse(name: &str, text: &str) -> Stack {
        Stack {
            name: name.to_owned(),
            template: serde_yaml_ng::from_str(text).expect("a template is YAML"),
        }
    }

    fn resources(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.template["Resources"]
            .as_mapping()
            .expect("Resources")
            .iter()
            .map(|(id, resource)| (id.as_str().expect("a logical id"), resource))
    }

    /// The APIs whose definition CloudFormation re-imports on update: SAM's HTTP APIs (SAM
    /// writes their body) and plain ones given a body.
    fn reimported_apis(&self) -> BTreeSet<String> {
        self.resources()
            .filter(|(_, r)| match r["Type"].as_str() {
                Some("AWS::Serverless::HttpApi") => true,
                Some("AWS::ApiGatewayV2::Api") => {
                    let p = &r["Properties"];
                    p.get("Body").is_some() || p.get("BodyS3Location").is_some()
                }
                _ => false,
            })
            .map(|(id, _)| id.to_owned())
            .collect()
    }
}

/// The API a value points at: `!Ref Api` in its own stack, or `!ImportValue` of another stack's
/// export whose value is `!Ref Api`.
fn api_of(value: &Value, stack: &Stack, stacks: &[Stack]) -> Option<ApiName> {
    if let Some(id) = tag(value, "Ref").and_then(Value::as_str) {
        return Some((stack.name.clone(), id.to_owned()));
    }
    let imported = tag(value, "ImportValue")?;
    let name = imported
        .get("Fn::Sub")
        .and_then(Value::as_str)
        .or_else(|| tag(imported, "Sub").and_then(Value::as_str))?;
    let export = name.rsplit_once("}-").map(|(_, export)| export)?;
    stacks.iter().find_map(|other| {
        let output = other.template["Outputs"].as_mapping()?.values().find(|o| {
            tag(&o["Export"]["Name"], "Sub").and_then(Value::as_str)
                == Some(&format!("${{AWS::StackName}}-{export}"))
        })?;
        let id = tag(&output["Value"], "Ref").and_then(Value::as_str)?;
        Some((other.name.clone(), id.to_owned()))
    })
}

/// Everything every stack puts on an API.
fn attachments(stacks: &[Stack]) -> BTreeSet<Attachment> {
    let mut found = BTreeSet::new();
    for stack in stacks {
        for (id, resource) in stack.resources() {
            let properties = &resource["Properties"];
            match resource["Type"].as_str() {
                // A SAM function's HttpApi events become paths of its API's body (the implicit
                // API when no ApiId is given).
                Some("AWS::Serverless::Function") => {
                    let Some(events) = properties["Events"].as_mapping() else {
                        continue;
                    };
                    for (event_name, event) in events {
                        if event["Type"] != "HttpApi" {
                            continue;
                        }
                        let api = match event["Properties"].get("ApiId") {
                            Some(api) => api_of(api, stack, stacks).expect("an event's ApiId"),
                            None => (stack.name.clone(), "ServerlessHttpApi".to_owned()),
                        };
                        let event_name = event_name.as_str().unwrap();
                        found.insert(Attachment {
                            api,
                            owner: (stack.name.clone(), format!("{id}.{event_name}")),
                            in_definition: true,
                        });
                    }
                }
                // A SAM HTTP API's authorizers are in its body.
                Some("AWS::Serverless::HttpApi") => {
                    if let Some(authorizers) = properties["Auth"]["Authorizers"].as_mapping() {
                        for name in authorizers.keys() {
                            found.insert(Attachment {
                                api: (stack.name.clone(), id.to_owned()),
                                owner: (
                                    stack.name.clone(),
                                    format!("{id}.{}", name.as_str().unwrap()),
                                ),
                                in_definition: true,
                            });
                        }
                    }
                }
                Some(
                    "AWS::ApiGatewayV2::Route"
                    | "AWS::ApiGatewayV2::Integration"
                    | "AWS::ApiGatewayV2::Authorizer",
                ) => {
                    let api = api_of(&properties["ApiId"], stack, stacks)
                        .unwrap_or_else(|| panic!("{}: {id}'s ApiId", stack.name));
                    found.insert(Attachment {
                        api,
                        owner: (stack.name.clone(), id.to_owned()),
                        in_definition: false,
                    });
                }
                _ => {}
            }
        }
    }
    found
}

/// The attachments left after an update of `updated`: each API of it whose definition is
/// re-imported keeps what its definition holds and loses what was attached beside it.
fn after_update(stacks: &[Stack], updated: &str) -> BTreeSet<Attachment> {
    let stack = stacks.iter().find(|s| s.name == updated).unwrap();
    let mut reimported: BTreeSet<ApiName> = stack
        .reimported_apis()
        .into_iter()
        .map(|id| (updated.to_owned(), id))
        .collect();
    reimported.insert((updated.to_owned(), "ServerlessHttpApi".to_owned()));
    attachments(stacks)
        .into_iter()
        .filter(|a| a.in_definition || !reimported.contains(&a.api))
        .collect()
}

/// Every attachment that an update of some stack removes, by the stack updated.
fn lost_in_updates(stacks: &[Stack]) -> BTreeMap<String, Vec<Attachment>> {
    let before = attachments(stacks);
    stacks
        .iter()
        .map(|s| {
            let after = after_update(stacks, &s.name);
            let lost: Vec<Attachment> = before.difference(&after).cloned().collect();
            (s.name.clone(), lost)
        })
        .filter(|(_, lost)| !lost.is_empty())
        .collect()
}

fn repository_stacks() -> Vec<Stack> {
    vec![
        Stack::read("lambda-auth", "template.yaml"),
        Stack::read("orders", "examples/orders/template.yaml"),
    ]
}

#[test]
fn every_route_of_every_stack_survives_an_update_of_any_stack() {
    let stacks = repository_stacks();
    let all = attachments(&stacks);
    // The model sees the routes: the auth stack's on its API, the example's on its own.
    assert!(
        all.iter().any(
            |a| a.api == ("lambda-auth".to_owned(), "AuthApi".to_owned())
                && a.owner.1 == "LoginFunction.Login"
        ),
        "{all:#?}"
    );
    assert!(
        all.iter()
            .any(|a| a.owner.0 == "orders" && a.owner.1.starts_with("OrdersFunction.")),
        "{all:#?}"
    );
    let lost = lost_in_updates(&stacks);
    assert!(
        lost.is_empty(),
        "an update removes routes (a route, integration or authorizer beside a re-imported \
         definition): {lost:#?}"
    );
}

/// The pattern this repository used before, a route attached to the auth stack's API through
/// its exported id, is what the model catches: the auth stack's next update removes it.
#[test]
fn a_route_attached_to_the_auth_api_from_another_stack_is_lost_on_update() {
    let mut auth = Stack::read("lambda-auth", "template.yaml");
    auth.template["Outputs"]["ApiId"] = serde_yaml_ng::from_str(
        "Value: !Ref AuthApi\nExport:\n  Name: !Sub \"${AWS::StackName}-ApiId\"\n",
    )
    .unwrap();
    let attached = Stack::parse(
        "attached",
        r#"
Resources:
  OrdersRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties:
      ApiId: !ImportValue
        Fn::Sub: "${AuthStackName}-ApiId"
      RouteKey: GET /orders
"#,
    );
    let lost = lost_in_updates(&[auth, attached]);
    let by_auth = lost
        .get("lambda-auth")
        .expect("the auth stack's update loses a route");
    assert_eq!(by_auth.len(), 1, "{by_auth:#?}");
    assert_eq!(
        by_auth[0].owner,
        ("attached".to_owned(), "OrdersRoute".to_owned())
    );
}
