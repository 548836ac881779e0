//! Health and the current user.

use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::CurrentUser;
use crate::model::Timestamp;

/// The answer of the health check.
#[derive(Debug, Serialize, ToSchema)]
pub struct OkBody {
    /// The server's time, RFC 3339.
    pub ok: String,
}

/// Health check; needs no token.
#[utoipa::path(get, path = "/api/v2/ok", tag = "health",
    responses((status = 200, description = "The server is up", body = OkBody)))]
pub async fn ok() -> Json<OkBody> {
    Json(OkBody {
        ok: Timestamp::now().to_string(),
    })
}

/// The group a user belongs to (gosd's shape; Sortie has one group per user).
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupView {
    /// Group id (the user's id).
    pub id: u64,
    /// Group name (the user's name).
    pub name: String,
    /// Always null.
    #[schema(value_type = Option<Object>)]
    pub extra: Option<serde_json::Value>,
}

/// The current user, in gosd's shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    /// User id.
    pub id: u64,
    /// Login name.
    pub username: String,
    /// UI language.
    pub language: String,
    /// Time zone.
    pub timezone: String,
    /// Whether the user may change nodes.
    pub admin: bool,
    /// The user's group.
    pub group: GroupView,
    /// Always empty.
    #[schema(value_type = Object)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// The user the token belongs to.
#[utoipa::path(get, path = "/api/v1/user/", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, description = "The current user", body = UserView),
        (status = 401, description = "No valid token", body = ErrorBody)))]
pub async fn current_user(CurrentUser(user): CurrentUser) -> Json<UserView> {
    Json(UserView {
        id: user.id,
        group: GroupView {
            id: user.id,
            name: user.username.clone(),
            extra: None,
        },
        username: user.username,
        language: "en_US".into(),
        timezone: "UTC".into(),
        admin: user.admin,
        extra: serde_json::Map::new(),
    })
}
