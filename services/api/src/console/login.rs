//! `GET/POST /console/login` and `POST /console/logout`.

use axum::{
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use maud::html;

use super::{
    layout::{error_page, respond, shell},
    see_other, session,
};
use crate::{state::AppState, Scope};

pub async fn form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    // Already logged in: straight to the overview.
    if let Ok(Some(_)) = session::find(&state, &headers).await {
        return see_other("/console");
    }
    login_page(StatusCode::OK, None)
}

fn login_page(status: StatusCode, problem: Option<&str>) -> Response {
    respond(
        status,
        shell(
            "Log in",
            "",
            None,
            html! {
                form.login method="post" action="/console/login" {
                    h1 { "sluice console" }
                    @if let Some(problem) = problem {
                        p.notice.bad role="alert" { (problem) }
                    }
                    label for="token" { "API token with the " code { "admin" } " scope" }
                    input #token type="password" name="token" autocomplete="current-password" required autofocus;
                    button type="submit" { "Log in" }
                    p.muted {
                        "The token is exchanged for a session cookie; it is not stored in the \
                         browser. Make one with "
                        code { "sluice tokens new --name <you> --scope admin" }
                        "; "
                        code { "make run" }
                        " prints a development token."
                    }
                }
            },
        ),
    )
}

#[derive(serde::Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    token: String,
}

pub async fn login(State(state): State<AppState>, headers: HeaderMap, body: String) -> Response {
    if !session::same_origin(&headers) {
        return login_page(
            StatusCode::FORBIDDEN,
            Some("This form was sent from another site."),
        );
    }
    let token = serde_urlencoded::from_str::<LoginForm>(&body)
        .map(|form| form.token)
        .unwrap_or_default();
    let token = token.trim();
    if token.is_empty() {
        return login_page(StatusCode::BAD_REQUEST, Some("Enter a token."));
    }
    let Some(caller) = state.auth.find(token) else {
        tracing::debug!(reason = "unknown", "refused a console login");
        return login_page(StatusCode::UNAUTHORIZED, Some("Unknown token."));
    };
    if !caller.may(Scope::Admin) {
        tracing::debug!(token = %caller.name, reason = "scope", "refused a console login");
        return login_page(
            StatusCode::FORBIDDEN,
            Some(&format!(
                "Token `{}` lacks the admin scope the console needs.",
                caller.name
            )),
        );
    }
    match session::create(&state, &caller).await {
        Ok(cookie) => {
            tracing::info!(token = %caller.name, "console login");
            let mut response = see_other("/console");
            response.headers_mut().insert(header::SET_COOKIE, cookie);
            response
        }
        Err(e) => {
            tracing::warn!(error = %e, "storing a console session in Redis failed");
            error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                "Sessions are kept in Redis, which cannot be reached right now. Try again shortly.",
            )
        }
    }
}

pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match session::end(&state, &headers).await {
        Ok(cookie) => {
            let mut response = see_other("/console/login");
            response.headers_mut().insert(header::SET_COOKIE, cookie);
            response
        }
        Err(e) => {
            tracing::warn!(error = %e, "ending a console session in Redis failed");
            error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                "The session could not be ended: Redis cannot be reached. Try again shortly.",
            )
            .into_response()
        }
    }
}
