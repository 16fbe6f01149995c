//! The repository agrees with itself: the route table against the template, `openapi.yaml`,
//! `events/`, `functions/` and the schema; the docs against the code.

mod docs;
mod function_keys;
mod layers;
mod route_table;
