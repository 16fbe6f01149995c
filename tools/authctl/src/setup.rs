//! `authctl deploy-setup`: the one step before the first `sam deploy`. It makes the signing key
//! and the MFA key, stores each in a Secrets Manager secret of its own (`<stack>/signing-key`,
//! `<stack>/mfa-key`), and writes into `samconfig.toml` the region and every parameter the
//! template needs a value for, so that `sam deploy` runs without `--guided`.
//!
//! It uses the environment's AWS credentials and region (`AWS_REGION`, or `--region`), and
//! `AWS_ENDPOINT_URL_SECRETS_MANAGER` when set (an emulator in the tests).

use aws_sdk_secretsmanager::Client;

use crate::USAGE;
use crate::keygen;

/// The lines of `samconfig.toml` this command owns, between these markers.
const BEGIN: &str = "# authctl deploy-setup: begin";
const END: &str = "# authctl deploy-setup: end";
const SECTION: &str = "[default.deploy.parameters]";

struct Options {
    mail_from: String,
    stack: String,
    region: Option<String>,
    issuer: Option<String>,
    audience: Option<String>,
    config: String,
}

fn options(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        mail_from: String::new(),
        stack: "lambda-auth".into(),
        region: None,
        issuer: None,
        audience: None,
        config: "samconfig.toml".into(),
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .cloned()
                .ok_or_else(|| format!("{arg} needs a value"))
        };
        match arg.as_str() {
            "--mail-from" => options.mail_from = value()?,
            "--stack" => options.stack = value()?,
            "--region" => options.region = Some(value()?),
            "--issuer" => options.issuer = Some(value()?),
            "--audience" => options.audience = Some(value()?),
            "--config" => options.config = value()?,
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if !options.mail_from.contains('@') {
        return Err(format!("--mail-from ADDRESS is required\n{USAGE}"));
    }
    Ok(options)
}

async fn create_secret(client: &Client, name: &str, value: &str) -> Result<String, String> {
    let created = client
        .create_secret()
        .name(name)
        .secret_string(value)
        .description("lambda-auth: made by authctl deploy-setup")
        .send()
        .await
        .map_err(|e| {
            format!(
                "creating the secret {name}: {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
            )
        })?;
    created
        .arn()
        .map(str::to_owned)
        .ok_or_else(|| format!("creating the secret {name}: no ARN in the answer"))
}

/// `samconfig.toml` with the block of this command (replaced if there) under `[default.deploy.parameters]`.
fn with_block(config: &str, block: &str) -> Result<String, String> {
    let mut text = config.to_owned();
    if let (Some(begin), Some(end)) = (text.find(BEGIN), text.find(END)) {
        let end = end + END.len() + usize::from(text[end + END.len()..].starts_with('\n'));
        text.replace_range(begin..end, "");
    }
    // The section's header line, not a mention of it in a comment.
    let at = text
        .match_indices(SECTION)
        .map(|(at, _)| at)
        .find(|&at| at == 0 || text[..at].ends_with('\n'))
        .ok_or_else(|| format!("no {SECTION} section"))?
        + SECTION.len();
    let at = at + usize::from(text[at..].starts_with('\n'));
    text.insert_str(at, block);
    Ok(text)
}

/// A `--parameter-overrides` value for SAM: `Key='value'` pairs, JSON kept whole.
fn overrides(pairs: &[(&str, String)]) -> Result<String, String> {
    pairs
        .iter()
        .map(|(key, value)| {
            if value.contains('\'') {
                Err(format!(
                    "{key}: a value with a single quote cannot be written"
                ))
            } else {
                Ok(format!("{key}='{value}'"))
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map(|pairs| pairs.join(" "))
}

pub async fn deploy_setup(args: &[String]) -> Result<String, String> {
    let options = options(args)?;
    let config_text =
        std::fs::read_to_string(&options.config).map_err(|e| format!("{}: {e}", options.config))?;
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(region) = &options.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    let sdk = loader.load().await;
    let region = sdk
        .region()
        .map(ToString::to_string)
        .ok_or("no region: set AWS_REGION or pass --region")?;
    let client = Client::new(&sdk);

    let signing = keygen::keygen(&[])?;
    let mfa_keys = keygen::mfa_keygen(&[])?;
    let signing_arn = create_secret(
        &client,
        &format!("{}/signing-key", options.stack),
        &signing.private_jwk,
    )
    .await?;
    let mfa_arn = create_secret(&client, &format!("{}/mfa-key", options.stack), &mfa_keys).await?;

    let issuer = options
        .issuer
        .unwrap_or_else(|| format!("https://{}.auth.invalid", options.stack));
    let audience = options.audience.unwrap_or_else(|| issuer.clone());
    let parameters = overrides(&[
        ("SigningKeySecretArn", signing_arn.clone()),
        ("MfaKeySecretArn", mfa_arn.clone()),
        ("JwtPublicKeys", signing.public_jwks),
        ("JwtIssuer", issuer),
        ("JwtAudience", audience),
        ("MailFrom", options.mail_from),
    ])?;
    let block = format!(
        "{BEGIN}\nstack_name = \"{}\"\nregion = \"{region}\"\nparameter_overrides = '''{parameters}'''\n{END}\n",
        options.stack
    );
    let updated = with_block(&config_text, &block)?;
    std::fs::write(&options.config, updated).map_err(|e| format!("{}: {e}", options.config))?;
    Ok(format!(
        "secrets {signing_arn} and {mfa_arn} made; {} now holds the region ({region}) and the \
         parameters: scripts/sam-build && sam deploy",
        options.config
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_block_replaces_the_last_one() {
        let config = "[default.deploy.parameters]\ncapabilities = \"CAPABILITY_IAM\"\n";
        let once = with_block(config, &format!("{BEGIN}\nregion = \"a\"\n{END}\n")).unwrap();
        let twice = with_block(&once, &format!("{BEGIN}\nregion = \"b\"\n{END}\n")).unwrap();
        assert_eq!(
            twice,
            format!(
                "[default.deploy.parameters]\n{BEGIN}\nregion = \"b\"\n{END}\ncapabilities = \"CAPABILITY_IAM\"\n"
            )
        );
        assert!(with_block("[other]\n", "x").is_err());
        // A comment that names the section is not the section.
        let commented = format!("# see {SECTION}\n{config}");
        let written = with_block(&commented, &format!("{BEGIN}\n{END}\n")).unwrap();
        assert!(written.starts_with(&format!("# see {SECTION}\n{SECTION}\n{BEGIN}")));
    }

    #[test]
    fn a_quote_in_a_value_is_refused_not_mangled() {
        assert_eq!(
            overrides(&[("A", "{\"k\":1}".into()), ("B", "x y".into())]).unwrap(),
            "A='{\"k\":1}' B='x y'"
        );
        assert!(overrides(&[("A", "it's".into())]).is_err());
    }
}
