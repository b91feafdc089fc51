//! `POST|GET|DELETE /api/v1/webhook-secrets` (`docs/protocol.md` §3.2).

use std::sync::Arc;

use axum::extract::{Request, State};
use ezthrottle_core::protocol::{CreateWebhookSecrets, StatusMessage, WebhookSecretsView};
use http::{Method, StatusCode};

use super::error::{bad_request, json_error, unauthorized};
use super::{ApiResponse, read_body};
use crate::config::Secret;
use crate::engine::Shared;
use crate::secrets::TenantSecrets;

/// Handles one secrets call for `tenant`.
pub(crate) async fn handle(shared: &Shared, tenant: &Arc<str>, method: &Method, body: &[u8]) -> ApiResponse {
    match *method {
        Method::POST => {
            let request: CreateWebhookSecrets =
                match serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(body)) {
                    Ok(request) => request,
                    Err(err) => {
                        let path = err.path().to_string();
                        let inner = err.into_inner();
                        if inner.is_syntax() || inner.is_eof() {
                            return bad_request("body", format!("malformed JSON ({inner})"));
                        }
                        let text = inner.to_string();
                        let message = text.rsplit_once(" at line ").map_or(text.as_str(), |(m, _)| m);
                        let field =
                            message.strip_prefix("missing field `").and_then(|rest| rest.split_once('`')).map_or_else(
                                || if path == "." { "body".to_owned() } else { path.clone() },
                                |(name, _)| name.to_owned(),
                            );
                        return bad_request(&field, message);
                    }
                };
            if let Err(invalid) = request.validate() {
                return bad_request(&invalid.field, &invalid.reason);
            }
            let secrets = TenantSecrets {
                primary: Secret::new(request.primary_secret.clone()),
                secondary: request.secondary_secret.clone().map(Secret::new),
            };
            if let Err(err) = shared.secrets.set(&*shared.store, tenant, Some(secrets)).await {
                return store_failed(&err);
            }
            tracing::info!(tenant = %tenant, has_secondary = request.secondary_secret.is_some(), "webhook secrets set");
            let mut answer = serde_json::to_value(StatusMessage::ok("Webhook secrets saved")).unwrap_or_default();
            if let (Some(object), Ok(serde_json::Value::Object(view))) = (
                answer.as_object_mut(),
                serde_json::to_value(WebhookSecretsView::masking(
                    Some(tenant.to_string()),
                    &request.primary_secret,
                    request.secondary_secret.as_deref(),
                )),
            ) {
                object.extend(view);
            }
            ApiResponse::json(StatusCode::OK, &answer)
        }
        Method::GET => match shared.secrets.get(&*shared.store, tenant).await {
            Err(err) => store_failed(&err),
            Ok(Some(secrets)) => ApiResponse::json(
                StatusCode::OK,
                &WebhookSecretsView::masking(
                    Some(tenant.to_string()),
                    secrets.primary.expose(),
                    secrets.secondary.as_ref().map(Secret::expose),
                ),
            ),
            Ok(None) => json_error(StatusCode::NOT_FOUND, "webhook_secrets: no webhook secrets configured"),
        },
        Method::DELETE => {
            if let Err(err) = shared.secrets.set(&*shared.store, tenant, None).await {
                return store_failed(&err);
            }
            ApiResponse::json(StatusCode::OK, &StatusMessage::ok("Webhook secrets deleted"))
        }
        _ => json_error(StatusCode::METHOD_NOT_ALLOWED, format!("method: {method} is not allowed here")),
    }
}

fn store_failed(err: &crate::store::StoreError) -> ApiResponse {
    super::error::store_unavailable("the webhook secrets could not be read or saved", err)
}

pub(super) async fn direct(State(shared): State<Arc<Shared>>, request: Request) -> ApiResponse {
    let Some(tenant) = shared.tenants.authenticate(request.headers()) else {
        return unauthorized();
    };
    let method = request.method().clone();
    match read_body(request, shared.config.max_body_bytes).await {
        Ok(body) => handle(&shared, &tenant, &method, &body).await,
        Err(response) => response,
    }
}
