//! A router that remembers the paths it was built from, so the OpenAPI
//! check can ask the real router about every route (which methods it
//! answers, from its `405 Allow` header) instead of trusting a second,
//! hand-kept list.

use axum::routing::MethodRouter;
use axum::Router;

use crate::AppState;

/// Routes under `/api/v1` as they are built.
#[derive(Default)]
pub struct Routes {
    router: Router<AppState>,
    paths: Vec<&'static str>,
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routes")
            .field("paths", &self.paths)
            .finish()
    }
}

impl Routes {
    /// No routes yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `path` with its handlers.
    pub fn route(mut self, path: &'static str, handlers: MethodRouter<AppState>) -> Self {
        self.router = self.router.route(path, handlers);
        self.paths.push(path);
        self
    }

    /// Adds all of `other`'s routes.
    pub fn merge(mut self, other: Self) -> Self {
        self.router = self.router.merge(other.router);
        self.paths.extend(other.paths);
        self
    }

    /// Changes the router (a layer on these routes only).
    pub fn map_router(mut self, f: impl FnOnce(Router<AppState>) -> Router<AppState>) -> Self {
        self.router = f(self.router);
        self
    }

    /// The paths, as given to [`Self::route`].
    pub fn paths(&self) -> &[&'static str] {
        &self.paths
    }

    /// The router.
    pub fn into_router(self) -> Router<AppState> {
        self.router
    }
}
