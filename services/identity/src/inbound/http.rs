//! The account API (`POST /api/users`) and the router of the whole service.
//!
//! Input is parsed into domain types here, at the edge; every failure becomes a
//! `problem+json` response through [`ApiError`], and nothing is written unless the whole
//! request is valid. The token endpoint and the JWKS live in [`super::oauth`]. Sign-up and the
//! token endpoint (which counts failed sign-ins) run detached from their client
//! ([`studycafe_platform::detach`]): a client that hangs up does not cancel them.

use std::sync::Arc;

use axum::{
    Router,
    extract::State,
    handler::Handler as _,
    http::{HeaderValue, StatusCode, header},
    middleware,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use studycafe_platform::{
    Problem,
    detach::{Detached, detach},
    openapi::{DocumentedRouter, Security},
    problem::Json,
};
use utoipa::ToSchema;

use crate::{
    application::{IdentityService, NewAccount, SignUpError},
    domain::{
        DisplayName, Field, FieldError, Password, User, Username,
        ports::{KeyRing, PasswordHasher, StoreError, UserStore},
    },
    inbound::oauth,
};

/// Every handler's state: the application service.
pub type ApiState<S, H, K> = Arc<IdentityService<S, H, K>>;

/// The service's routes; the write routes run on `detached`.
pub fn routes<S: UserStore, H: PasswordHasher, K: KeyRing>(
    service: IdentityService<S, H, K>,
    detached: &Detached,
) -> Router {
    let detached = || middleware::from_fn_with_state(detached.clone(), detach);
    let (router, _) = DocumentedRouter::new(
        "identity",
        "Accounts, the OAuth2 token endpoint and the keys that verify its tokens.",
    )
    .route(
        __path_sign_up,
        sign_up::<S, H, K>.layer(detached()),
        Security::Anonymous,
    )
    .route(
        oauth::__path_token,
        oauth::token::<S, H, K>.layer(detached()),
        Security::Anonymous,
    )
    .route(
        oauth::__path_jwks,
        oauth::jwks::<S, H, K>,
        Security::Anonymous,
    )
    .finish();
    router.with_state(Arc::new(service))
}

/// Every way an account request can fail, mapped to `problem+json` in one place.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error(transparent)]
    SignUp(#[from] SignUpError),
}

fn field_name(field: Field) -> &'static str {
    match field {
        Field::Username => "username",
        Field::Password => "password",
        Field::DisplayName => "displayName",
    }
}

fn unavailable(e: &StoreError) -> Problem {
    tracing::error!(error = %e, "user store unavailable");
    Problem::unavailable("the account store is unavailable; try again shortly")
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = match &self {
            ApiError::Invalid(e) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-field",
                "Invalid field",
                e.message.clone(),
            )
            .with("field", field_name(e.field)),
            ApiError::SignUp(e) => match e {
                SignUpError::UsernameTaken(username) => Problem::new(
                    StatusCode::CONFLICT,
                    "username-taken",
                    "Username taken",
                    e.to_string(),
                )
                .with("username", username.as_str()),
                SignUpError::Store(s) => unavailable(s),
                SignUpError::Hash(h) => Problem::internal(h),
            },
        };
        problem.into_response()
    }
}

/// A new customer account.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = SignUp)]
struct SignUpBody {
    #[schema(example = "carol")]
    username: String,
    #[schema(format = Password, example = "carol-studies")]
    password: String,
    #[schema(example = "Carol")]
    display_name: String,
}

// By hand, so the password never reaches a log through `{:?}`.
impl std::fmt::Debug for SignUpBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignUpBody")
            .field("username", &self.username)
            .field("display_name", &self.display_name)
            .finish_non_exhaustive()
    }
}

/// An account, without its secrets.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = User)]
struct UserView {
    id: String,
    username: String,
    display_name: String,
    roles: Vec<&'static str>,
}

impl From<&User> for UserView {
    fn from(user: &User) -> Self {
        Self {
            id: user.id.to_string(),
            username: user.username.to_string(),
            display_name: user.display_name.as_str().to_owned(),
            roles: user.role_names(),
        }
    }
}

/// Signs up a customer.
#[utoipa::path(
    post,
    path = "/api/users",
    tag = "accounts",
    request_body = SignUpBody,
    responses(
        (status = 201, description = "Created; `Location` names the account", body = UserView,
            headers(("Location" = String, description = "The account's URL"))),
        (status = 409, description = "The username is taken"),
        (status = 422, description = "A field is invalid (`field` names it)"),
    ),
)]
async fn sign_up<S: UserStore, H: PasswordHasher, K: KeyRing>(
    State(service): State<ApiState<S, H, K>>,
    Json(body): Json<SignUpBody>,
) -> Result<Response, ApiError> {
    let account = NewAccount {
        username: Username::parse(&body.username)?,
        password: Password::parse(body.password)?,
        display_name: DisplayName::parse(&body.display_name)?,
    };
    let user = service.sign_up(account).await?;
    let mut response = (StatusCode::CREATED, Json(UserView::from(&user))).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/api/users/{}", user.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}
