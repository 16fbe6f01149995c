//! Running the API locally (`tools/local-api`) as API Gateway would: its limits, and a team's
//! own function behind the authorizer (`--extra-route`).

mod extra_route;
mod limits;
