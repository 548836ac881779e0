//! The OpenAPI document's header. Paths are added by the router as routes are registered.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The document's title, version, tags and security scheme.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sortie coordinator (gosd API)",
        description = "Runs work on fleets of field hardware. Compatible with gosd v2 clients.",
    ),
    modifiers(&BearerScheme),
    tags(
        (name = "health", description = "Liveness"),
        (name = "auth", description = "Tokens and the current user"),
        (name = "nodes", description = "Devices and their points"),
        (name = "blobs", description = "Stored files"),
        (name = "plans", description = "What to run where"),
        (name = "jobs", description = "Runs of a plan"),
    )
)]
pub struct ApiDoc;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A token from POST /oauth/token"))
                    .build(),
            ),
        );
    }
}
