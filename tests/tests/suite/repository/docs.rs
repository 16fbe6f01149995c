//! The repository explains itself: `docs/api.md` names every route of the route table and every
//! configuration variable the service reads, and nothing that does not exist.

use std::collections::BTreeSet;
use std::path::Path;

use shared::bootstrap::{
    MFA_KEY_SECRET_VAR, MFA_KEY_VAR, PUBLIC_KEYS_VAR, SIGNING_KEY_SECRET_VAR, SIGNING_KEY_VAR,
};
use shared::routes::ROUTES;

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The text between `<!-- NAME:start -->` and `<!-- NAME:end -->`.
fn section<'a>(text: &'a str, name: &str) -> &'a str {
    let start = format!("<!-- {name}:start -->");
    let end = format!("<!-- {name}:end -->");
    let from = text.find(&start).unwrap_or_else(|| panic!("no {start}")) + start.len();
    let to = text[from..]
        .find(&end)
        .unwrap_or_else(|| panic!("no {end}"))
        + from;
    &text[from..to]
}

/// The first cell of each row of a Markdown table, without its backticks.
fn first_cells(table: &str) -> Vec<String> {
    table
        .lines()
        .filter_map(|line| line.strip_prefix("| "))
        .filter_map(|row| row.split(" |").next())
        .map(|cell| cell.trim_matches('`').to_owned())
        .filter(|cell| cell != "route" && !cell.starts_with("---"))
        .collect()
}

#[test]
fn the_reference_lists_exactly_the_routes_of_the_table() {
    let docs = read("docs/api.md");
    let listed: BTreeSet<String> = first_cells(section(&docs, "routes")).into_iter().collect();
    let served: BTreeSet<String> = ROUTES
        .iter()
        .filter(|r| !r.is_default())
        .map(|r| r.key())
        .collect();
    if let Some(key) = served.difference(&listed).next() {
        panic!("docs/api.md: add `{key}` to the routes table");
    }
    if let Some(key) = listed.difference(&served).next() {
        panic!("docs/api.md lists `{key}`, which shared/src/routes.rs (ROUTES) does not have");
    }
}

/// Every variable the service reads: `Config`'s and the keys'.
fn configuration_variables() -> Vec<String> {
    let mut names = integration_tests::configuration_variables();
    names.extend(
        [
            PUBLIC_KEYS_VAR,
            SIGNING_KEY_SECRET_VAR,
            SIGNING_KEY_VAR,
            MFA_KEY_VAR,
            MFA_KEY_SECRET_VAR,
        ]
        .map(str::to_owned),
    );
    names
}

#[test]
fn the_reference_documents_every_configuration_variable() {
    let docs = read("docs/api.md");
    for name in configuration_variables() {
        assert!(
            docs.contains(&format!("`{name}`")),
            "docs/api.md: document `{name}` under Configuration"
        );
    }
}

#[test]
fn the_readme_points_to_files_of_the_repository() {
    let readme = read("README.md");
    assert!(
        !readme.contains("../shared"),
        "README.md links outside the repository"
    );
    assert!(
        readme.contains("docs/api.md"),
        "README.md: link the API reference"
    );
}

#[test]
fn the_readmes_function_table_gives_each_function_its_routes() {
    let readme = read("README.md");
    let table = section(&readme, "functions");
    let mut described = BTreeSet::new();
    for row in table.lines().filter_map(|l| l.strip_prefix("| `")) {
        let mut cells = row.split(" | ");
        let binary = cells.next().unwrap_or_default().trim_end_matches('`');
        let function = shared::routes::Function::from_binary(binary)
            .unwrap_or_else(|| panic!("README.md's function table names {binary}, no Function"));
        described.insert(binary.to_owned());
        let routes_cell = cells.next().unwrap_or_default();
        let named: BTreeSet<String> = routes_cell
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|quoted| quoted.contains(' '))
            .map(str::to_owned)
            .collect();
        let served: BTreeSet<String> = function
            .routes()
            .iter()
            .filter(|r| !r.is_default())
            .map(|r| r.key())
            .collect();
        assert_eq!(
            named, served,
            "README.md: the function table's row for {binary} must name exactly its routes"
        );
    }
    for function in shared::routes::Function::ALL {
        assert!(
            described.contains(function.binary()),
            "README.md: add {} to the function table",
            function.binary()
        );
    }
}
