//! The routes of [`Login`]: the sign-in and sign-out handlers mounted at the configured paths.

use axum::Router;
use axum::routing::{get, post};

use crate::{Login, SignIn, backchannel, mine, risc, routes};

impl<H: SignIn> Login<H> {
    /// `GET /login`, `GET /login/callback` and `POST /logout` (the configured paths), each other provider's
    /// `GET /login/<id>` and `GET /login/<id>/callback`, the grant route (`GET /login/grant`), and the session
    /// routes, for `Router::merge`.
    pub fn routes<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        let login = &self.inner.sessions.0.login;
        let mut router = Router::new();
        for (index, entry) in self.inner.providers.iter().enumerate() {
            router = router
                .route(
                    &entry.paths.login,
                    get(move |state, auth, headers, query| routes::login::<H>(state, index, auth, headers, query)),
                )
                .route(
                    &entry.paths.callback,
                    get(move |state, auth, headers, query| routes::callback::<H>(state, index, auth, headers, query)),
                );
        }
        let mut backchannel = Router::new();
        for (index, entry) in self.inner.providers.iter().enumerate() {
            backchannel = backchannel.route(
                &entry.paths.backchannel,
                post(move |state, control, form| backchannel::receive::<H>(state, index, control, form)),
            );
        }
        router
            .route(&login.logout_path, post(routes::logout::<H>))
            .route(&login.grant_path(), get(crate::grants::route::begin::<H>))
            .route(&login.end_session_path, post(mine::end_one::<H>))
            .route(&login.end_all_sessions_path, post(mine::end_all::<H>))
            .route_layer(self.inner.limit.clone())
            // A provider POSTs its logout tokens from one address, possibly many at once: not rate limited; nor is
            // a RISC transmitter.
            .merge(backchannel)
            .route(&login.risc_path, post(risc::receive::<H>))
            .with_state(self.clone())
    }
}
