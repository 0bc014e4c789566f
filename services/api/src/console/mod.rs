//! The web console at `/console`: what an on-call engineer opens first. Server-rendered HTML
//! (maud), readable without JavaScript; htmx (vendored) only refreshes parts in place.
//!
//! Who may use it: a person who logs in with a token of the `admin` scope (`session`). Every
//! page but the login form and the assets needs that session; every POST also needs the
//! session's CSRF token, checked here for all of them at once (`guard`), so a new form cannot
//! forget it. Every answer carries a Content-Security-Policy without inline scripts or styles.
//!
//! The views call the same code as the CLI and the JSON API: `sluice_dlq` for dead letters,
//! `sluice_stats` for queue health, the api's own job cancellation.

mod assets;
mod consumers;
mod dead_letters;
mod feeds;
mod jobs;
mod layout;
mod login;
mod overview;
mod replay;
mod schedules;
mod session;
mod sparkline;

use axum::{
    body::Body,
    extract::{Request, State},
    http::{header, Method, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};

use crate::state::AppState;
use layout::error_page;
pub use session::Session;

/// Form bodies are small; anything larger is not one of ours.
const FORM_LIMIT: usize = 64 * 1024;

pub fn routes(state: &AppState) -> Router<AppState> {
    let guarded = Router::new()
        .route("/console", get(overview::page))
        .route("/console/logout", axum::routing::post(login::logout))
        .route("/console/jobs", get(jobs::page))
        .route(
            "/console/jobs/{id}/cancel",
            get(jobs::confirm_cancel).post(jobs::cancel),
        )
        .route("/console/dead-letters", get(dead_letters::kinds))
        .route("/console/dead-letters/{kind}", get(dead_letters::list))
        .route(
            "/console/dead-letters/{kind}/replay",
            get(replay::preview).post(replay::replay),
        )
        .route(
            "/console/dead-letters/{kind}/purge",
            get(replay::confirm_purge).post(replay::purge),
        )
        .route(
            "/console/dead-letters/{kind}/letters/{position}",
            get(dead_letters::show),
        )
        .route("/console/schedules", get(schedules::page))
        .route("/console/consumers", get(consumers::page))
        .route("/console/feeds", get(feeds::page))
        .route_layer(middleware::from_fn_with_state(state.clone(), guard));
    Router::new()
        .merge(guarded)
        .route("/console/", get(|| async { see_other("/console") }))
        .route("/console/login", get(login::form).post(login::login))
        .route("/console/assets/{name}", get(assets::get))
}

/// Lets a request through only with a live admin session; a POST also needs the same origin
/// and the session's CSRF token (read from the form here, then handed on untouched).
async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let session = match session::find(&state, request.headers()).await {
        Ok(session) => session,
        Err(e) => {
            tracing::warn!(error = %e, "reading a console session from Redis failed");
            return error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                "Sessions are kept in Redis, which cannot be reached right now. Try again shortly.",
            );
        }
    };
    let Some(session) = session else {
        // An htmx refresh of a page whose session ended: send the whole page to the login form
        // rather than swap the form into a corner of it.
        if request.headers().contains_key("hx-request") {
            let mut response = StatusCode::UNAUTHORIZED.into_response();
            response.headers_mut().insert(
                "hx-redirect",
                axum::http::HeaderValue::from_static("/console/login"),
            );
            layout::security_headers(response.headers_mut());
            return response;
        }
        if request.method() == Method::GET {
            return see_other("/console/login");
        }
        return error_page(
            StatusCode::UNAUTHORIZED,
            None,
            "Log in with a token of the admin scope first.",
        );
    };
    let mut request = if request.method() == Method::POST {
        match checked_post(&session, request).await {
            Ok(request) => request,
            Err(refusal) => return refusal,
        }
    } else {
        request
    };
    request.extensions_mut().insert(session);
    next.run(request).await
}

async fn checked_post(session: &Session, request: Request) -> Result<Request, Response> {
    let refuse = |message: &str| error_page(StatusCode::FORBIDDEN, Some(session), message);
    if !session::same_origin(request.headers()) {
        return Err(refuse("This form was sent from another site."));
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, FORM_LIMIT).await else {
        return Err(error_page(
            StatusCode::PAYLOAD_TOO_LARGE,
            Some(session),
            "The form is larger than any of the console's.",
        ));
    };
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
    let csrf = fields.iter().find(|(name, _)| name == "_csrf");
    if !csrf.is_some_and(|(_, value)| session.csrf_matches(value)) {
        return Err(refuse(
            "This form has expired or did not come from this console. Reload the page and try again.",
        ));
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// A page's query string, or the page that says what is wrong with it.
pub fn parsed<T>(
    query: Result<axum::extract::Query<T>, axum::extract::rejection::QueryRejection>,
    session: &Session,
) -> Result<T, Box<Response>> {
    query.map(|axum::extract::Query(q)| q).map_err(|e| {
        Box::new(error_page(
            StatusCode::BAD_REQUEST,
            Some(session),
            &format!("This page's address is malformed: {}", e.body_text()),
        ))
    })
}

/// 303 to `path`, with the console's headers.
pub fn see_other(path: &str) -> Response {
    let mut response =
        (StatusCode::SEE_OTHER, [(header::LOCATION, path.to_owned())]).into_response();
    layout::security_headers(response.headers_mut());
    response
}
