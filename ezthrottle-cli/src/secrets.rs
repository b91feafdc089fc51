//! `ezthrottle secrets create | get | rotate | delete`.

use ezthrottle_core::protocol::mask_secret;
use serde_json::json;

use crate::args::{ENV_WEBHOOK_SECONDARY_SECRET, ENV_WEBHOOK_SECRET, SecretsAction, SecretsArgs};
use crate::output::{CliError, Output, Status};
use crate::secret_input::{SecretSource, read_stdin, resolve};

/// The secrets of `create` and `rotate`: after either, the primary is in
/// `EZTHROTTLE_WEBHOOK_SECRET` and the secondary in `EZTHROTTLE_WEBHOOK_SECONDARY_SECRET`,
/// the names a receiver verifies with.
const PRIMARY: SecretSource = SecretSource { flag: "--primary", variable: ENV_WEBHOOK_SECRET };
const SECONDARY: SecretSource = SecretSource { flag: "--secondary", variable: ENV_WEBHOOK_SECONDARY_SECRET };
const NEW: SecretSource = SecretSource { flag: "--new", variable: ENV_WEBHOOK_SECRET };
const PREVIOUS: SecretSource = SecretSource { flag: "--previous", variable: ENV_WEBHOOK_SECONDARY_SECRET };

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Runs one webhook-secret operation. Secrets are only ever printed masked.
pub(crate) async fn run(args: &SecretsArgs, out: Output) -> Result<Status, CliError> {
    let client = args.connection.client()?;
    match &args.action {
        SecretsAction::Create { primary, secondary, secret_stdin } => {
            let sources = [(PRIMARY, primary.as_deref()), (SECONDARY, secondary.as_deref())];
            let [primary, secondary] = resolve(sources, *secret_stdin, env, read_stdin)?;
            let primary = PRIMARY.required(primary)?;
            let primary = primary.as_str();
            client.create_webhook_secret(primary, secondary.as_deref()).await?;
            tracing::info!(secondary = secondary.is_some(), "webhook secrets set");
            print_set(out, "webhook secrets set", primary, secondary.as_deref());
        }
        SecretsAction::Rotate { new, previous, secret_stdin } => {
            let sources = [(NEW, new.as_deref()), (PREVIOUS, previous.as_deref())];
            let [new, previous] = resolve(sources, *secret_stdin, env, read_stdin)?;
            let (new, previous) = (NEW.required(new)?, PREVIOUS.required(previous)?);
            let (new, previous) = (new.as_str(), previous.as_str());
            client.rotate_webhook_secret(new, previous).await?;
            tracing::info!("webhook secrets rotated");
            print_set(out, "webhook secrets rotated", new, Some(previous));
        }
        SecretsAction::Get => {
            let view = client.get_webhook_secret().await?;
            // The server masks them; mask again anything that does not look masked.
            let primary = masked(&view.primary_secret);
            let secondary = view.secondary_secret.as_deref().map(masked);
            let mut text = String::new();
            if let Some(customer) = &view.customer_id {
                text.push_str(&format!("customer_id: {customer}\n"));
            }
            text.push_str(&format!(
                "primary_secret: {primary}\nsecondary_secret: {}",
                secondary.as_deref().unwrap_or("(none)")
            ));
            let value = json!({
                "customer_id": view.customer_id,
                "primary_secret": primary,
                "secondary_secret": secondary,
                "has_secondary": view.has_secondary,
            });
            out.print(&text, &value);
        }
        SecretsAction::Delete => {
            client.delete_webhook_secret().await?;
            out.print("webhook secrets deleted", &json!({ "status": "ok", "deleted": true }));
        }
    }
    Ok(Status::Ok)
}

fn print_set(out: Output, what: &str, primary: &str, secondary: Option<&str>) {
    let (primary, secondary) = (mask_secret(primary), secondary.map(mask_secret));
    let text = match &secondary {
        Some(secondary) => format!("{what}: primary {primary}, secondary {secondary}"),
        None => format!("{what}: primary {primary}"),
    };
    out.print(&text, &json!({ "status": "ok", "primary_secret": primary, "secondary_secret": secondary }));
}

/// A value the server already masked (`abcd****wxyz`: stars and at most 8 other characters)
/// as is; anything else masked here.
fn masked(value: &str) -> String {
    let shown = value.chars().filter(|c| *c != '*').count();
    if value.contains("***") && shown <= 8 { value.to_owned() } else { mask_secret(value) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clear_values_are_masked() {
        for (value, shown) in [
            ("abcd****wxyz", "abcd****wxyz"),
            ("abcdefghijklmnopwxyz", "abcd****wxyz"),
            ("short", "****"),
            ("a-clear***secret-value", "a-cl****alue"),
        ] {
            assert_eq!(masked(value), shown, "{value}");
        }
    }
}
