//! `authctl`: operator commands for the auth backend.
//!
//! ```text
//! authctl keygen [--kid KID] [--public-keys FILE]
//! authctl mfa-keygen [--kid KID] [--keys CURRENT]
//! authctl deactivate EMAIL [--data-dir DIR]
//! authctl reactivate EMAIL [--data-dir DIR]
//! authctl grant-role EMAIL ROLE [--data-dir DIR]
//! authctl revoke-role EMAIL ROLE [--data-dir DIR]
//! authctl deploy-setup --mail-from ADDRESS [--stack NAME] [--region REGION] [--issuer URL] [--audience AUD]
//! ```
//! `deploy-setup` is the one step before the first `sam deploy`: both keys into Secrets
//! Manager, and the region and every required parameter into `samconfig.toml`.
//! `keygen` generates an Ed25519 signing key and prints the secret value to store in AWS
//! Secrets Manager and the public JWK Set to configure (`JwtPublicKeys` / `JWT_PUBLIC_KEYS`).
//! With `--public-keys`, the new key is added to an existing set, which is how a rotation
//! starts: publish the new key first, switch the secret once verifiers have it.
//!
//! `mfa-keygen` prints a new key for sealing TOTP secrets (`MFA_ENCRYPTION_KEY`, or the Secrets
//! Manager secret `MfaKeySecretArn` names). With `--keys`, the current keys follow the new one:
//! the new key seals from then on, the old ones still open what they sealed.
//!
//! `deactivate` refuses every further sign-in of an account and ends all its sessions at once;
//! `reactivate` lets it sign in again (its old sessions stay ended). `grant-role` and
//! `revoke-role` change a user's roles (`grant-role EMAIL admin` makes the first admin); tokens
//! carry the change from the user's next refresh on. They work on the DynamoDB
//! tables of the environment (`USERS_TABLE`, `SESSIONS_TABLE`, AWS credentials, and
//! `AWS_ENDPOINT_URL_DYNAMODB` for DynamoDB Local), or with `--data-dir` on the local server's
//! embedded store (stop the server first: the store file is locked while it runs).

mod accounts;
mod keygen;
mod setup;

use std::process::ExitCode;

const USAGE: &str = "usage: authctl keygen [--kid KID] [--public-keys FILE]
       authctl mfa-keygen [--kid KID] [--keys CURRENT]
       authctl deactivate EMAIL [--data-dir DIR]
       authctl reactivate EMAIL [--data-dir DIR]
       authctl grant-role EMAIL ROLE [--data-dir DIR]
       authctl revoke-role EMAIL ROLE [--data-dir DIR]
       authctl deploy-setup --mail-from ADDRESS [--stack NAME] [--region REGION] [--issuer URL] [--audience AUD] [--config FILE]";

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("keygen") => keygen::keygen(&args[1..]).map(|generated| {
            println!("# Secret value: the private signing key. Store it in AWS Secrets Manager and nowhere else:");
            println!("#   aws secretsmanager create-secret --name lambda-auth/signing-key --secret-string '<the line below>'");
            println!("{}", generated.private_jwk);
            println!();
            println!("# Public JWK Set: the JwtPublicKeys parameter of template.yaml (JWT_PUBLIC_KEYS):");
            println!("{}", generated.public_jwks);
        }),
        Some("mfa-keygen") => keygen::mfa_keygen(&args[1..]).map(|keys| {
            println!("# MFA_ENCRYPTION_KEY: seals TOTP secrets. Store it in AWS Secrets Manager and nowhere else:");
            println!("#   aws secretsmanager create-secret --name lambda-auth/mfa-key --secret-string '<the line below>'");
            println!("{keys}");
        }),
        Some(command @ ("deactivate" | "reactivate")) => {
            accounts::set_active(&args[1..], command == "reactivate").await.map(|message| println!("{message}"))
        }
        Some(command @ ("grant-role" | "revoke-role")) => {
            accounts::change_role(&args[1..], command == "grant-role").await.map(|message| println!("{message}"))
        }
        Some("deploy-setup") => setup::deploy_setup(&args[1..]).await.map(|message| println!("{message}")),
        Some("-h" | "--help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("authctl: {message}");
            ExitCode::FAILURE
        }
    }
}
