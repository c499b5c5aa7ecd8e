//! The route table: which public path goes to which service, and who may call it.
//!
//! Routing is data, not code: one [`Route`] per public path prefix. A prefix matches on whole
//! path segments (`/api/seats` matches `/api/seats` and `/api/seats/A-01`, never
//! `/api/seatsx`), so a new service's paths cannot be captured by accident.

use std::fmt;

/// A service behind the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Upstream {
    Identity,
    Seat,
    Registration,
    Payment,
    SeatView,
    /// The notification service (Python, joined by a new team).
    Notification,
}

impl Upstream {
    pub const ALL: [Upstream; 6] = [
        Upstream::Identity,
        Upstream::Seat,
        Upstream::Registration,
        Upstream::Payment,
        Upstream::SeatView,
        Upstream::Notification,
    ];

    /// The service's name, as logs, metrics and problem details show it.
    pub fn name(self) -> &'static str {
        match self {
            Upstream::Identity => "identity",
            Upstream::Seat => "seat",
            Upstream::Registration => "registration",
            Upstream::Payment => "payment",
            Upstream::SeatView => "seat-view",
            Upstream::Notification => "notification",
        }
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the gateway itself demands of a caller before forwarding. The services check again
/// (ownership, finer roles); the gateway only turns away what can never succeed, so junk
/// never reaches them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token needed (a token that is present must still be valid).
    Anonymous,
    /// A valid token.
    Caller,
    /// A valid token with the admin role.
    Admin,
}

/// One public path prefix and where it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub prefix: &'static str,
    pub upstream: Upstream,
    pub auth: Access,
}

impl Route {
    const fn new(prefix: &'static str, upstream: Upstream, auth: Access) -> Self {
        Self {
            prefix,
            upstream,
            auth,
        }
    }

    fn matches(&self, path: &str) -> bool {
        segment_prefix(path, self.prefix)
    }
}

/// The public API of the suite.
pub const ROUTES: &[Route] = &[
    Route::new("/auth/token", Upstream::Identity, Access::Anonymous),
    Route::new(
        "/.well-known/jwks.json",
        Upstream::Identity,
        Access::Anonymous,
    ),
    // Sign-up is anonymous; identity checks anything else under it itself.
    Route::new("/api/users", Upstream::Identity, Access::Anonymous),
    Route::new("/api/seats", Upstream::Seat, Access::Anonymous),
    Route::new("/api/reservations", Upstream::Seat, Access::Caller),
    Route::new("/api/board", Upstream::SeatView, Access::Anonymous),
    Route::new("/api/my", Upstream::SeatView, Access::Caller),
    Route::new("/api/admin", Upstream::Registration, Access::Admin),
    Route::new("/api/payments", Upstream::Payment, Access::Caller),
    Route::new("/api/notifications", Upstream::Notification, Access::Caller),
];

/// The gateway's own public paths: the API's OpenAPI document and its reference page. They
/// pass the same edge (token, rate limit) as the proxied routes; the gateway's own document
/// describes each (`inbound::openapi`).
pub const OWN: &[&str] = &["/api/openapi.json", "/api/docs"];

/// Service-to-service endpoints: never reachable from outside, whatever else changes.
const INTERNAL: &str = "/internal";
const API: &str = "/api";

/// Where a request path leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// Forward to a service.
    Proxy(Route),
    /// One of the gateway's own paths ([`OWN`]).
    Own(&'static str),
    /// A service-to-service path: refused as if it did not exist.
    Internal,
    /// Under `/api` but no service serves it.
    UnknownApi,
    /// A path with `.`/`..` segments (plain or percent-encoded): refused, because services
    /// behind us might resolve them differently than this table does.
    Ambiguous,
    /// Everything else: the static web root.
    Static,
}

impl Destination {
    /// A bounded label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Destination::Proxy(route) => route.prefix,
            Destination::Own(path) => path,
            Destination::Internal => "internal",
            Destination::UnknownApi => "unknown-api",
            Destination::Ambiguous => "ambiguous",
            Destination::Static => "static",
        }
    }
}

/// The table of routes (the public API by default; tests may build their own).
#[derive(Debug, Clone, Copy)]
pub struct RouteTable {
    routes: &'static [Route],
}

impl Default for RouteTable {
    fn default() -> Self {
        Self { routes: ROUTES }
    }
}

impl RouteTable {
    pub fn new(routes: &'static [Route]) -> Self {
        Self { routes }
    }

    pub fn routes(&self) -> &'static [Route] {
        self.routes
    }

    /// Where `path` (without the query) goes.
    pub fn resolve(&self, path: &str) -> Destination {
        if has_dot_segment(path) {
            return Destination::Ambiguous;
        }
        if segment_prefix(path, INTERNAL) {
            return Destination::Internal;
        }
        if let Some(own) = OWN.iter().find(|own| **own == path) {
            return Destination::Own(own);
        }
        if let Some(route) = self.routes.iter().find(|r| r.matches(path)) {
            return Destination::Proxy(*route);
        }
        if segment_prefix(path, API) {
            Destination::UnknownApi
        } else {
            Destination::Static
        }
    }
}

/// `path` is `prefix` or continues it with a new segment.
fn segment_prefix(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|segment| {
        let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
        decoded == "." || decoded == ".."
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxied(path: &str) -> (Upstream, Access) {
        match RouteTable::default().resolve(path) {
            Destination::Proxy(route) => (route.upstream, route.auth),
            other => panic!("{path} resolved to {other:?}"),
        }
    }

    #[test]
    fn every_public_prefix_goes_to_its_service() {
        use Access::*;
        use Upstream::*;
        for (path, want) in [
            ("/auth/token", (Identity, Anonymous)),
            ("/.well-known/jwks.json", (Identity, Anonymous)),
            ("/api/users", (Identity, Anonymous)),
            ("/api/seats", (Seat, Anonymous)),
            ("/api/seats/A-01", (Seat, Anonymous)),
            ("/api/reservations", (Seat, Caller)),
            ("/api/reservations/0198-abc", (Seat, Caller)),
            ("/api/board", (SeatView, Anonymous)),
            ("/api/board/stream", (SeatView, Anonymous)),
            ("/api/my/reservations", (SeatView, Caller)),
            ("/api/admin/bookings/42/confirm", (Registration, Admin)),
            ("/api/payments", (Payment, Caller)),
            ("/api/notifications", (Notification, Caller)),
            ("/api/notifications/stream", (Notification, Caller)),
            ("/api/notifications/read-marker", (Notification, Caller)),
        ] {
            assert_eq!(proxied(path), want, "{path}");
        }
    }

    #[test]
    fn prefixes_match_whole_segments_only() {
        let table = RouteTable::default();
        assert_eq!(table.resolve("/api/seatsx"), Destination::UnknownApi);
        assert_eq!(table.resolve("/api/boards"), Destination::UnknownApi);
        assert_eq!(
            table.resolve("/api/adminx/bookings"),
            Destination::UnknownApi
        );
        assert_eq!(table.resolve("/auth/tokens"), Destination::Static);
    }

    #[test]
    fn internal_paths_are_never_routed() {
        let table = RouteTable::default();
        for path in ["/internal", "/internal/payments", "/internal/x/y"] {
            assert_eq!(table.resolve(path), Destination::Internal, "{path}");
        }
        assert_eq!(table.resolve("/internalized"), Destination::Static);
    }

    #[test]
    fn dot_segments_are_refused_before_any_prefix_matches() {
        let table = RouteTable::default();
        for path in [
            "/api/seats/../../internal/x",
            "/api/seats/%2e%2e/%2E%2E/internal/x",
            "/api/board/./stream",
            "/..",
        ] {
            assert_eq!(table.resolve(path), Destination::Ambiguous, "{path}");
        }
        // Dots inside a segment are ordinary characters.
        assert_eq!(table.resolve("/app.js"), Destination::Static);
        assert!(matches!(
            table.resolve("/api/seats/A.01"),
            Destination::Proxy(_)
        ));
    }

    #[test]
    fn other_api_paths_are_unknown_and_the_rest_is_static() {
        let table = RouteTable::default();
        assert_eq!(table.resolve("/api"), Destination::UnknownApi);
        assert_eq!(table.resolve("/api/nope"), Destination::UnknownApi);
        assert_eq!(table.resolve("/"), Destination::Static);
        assert_eq!(table.resolve("/index.html"), Destination::Static);
        assert_eq!(table.resolve("/css/site.css"), Destination::Static);
    }

    #[test]
    fn the_gateways_own_paths_are_exact_and_never_proxied() {
        let table = RouteTable::default();
        assert_eq!(
            table.resolve("/api/openapi.json"),
            Destination::Own("/api/openapi.json")
        );
        assert_eq!(table.resolve("/api/docs"), Destination::Own("/api/docs"));
        assert_eq!(table.resolve("/api/docs/x"), Destination::UnknownApi);
        assert_eq!(table.resolve("/api/openapi.jsonx"), Destination::UnknownApi);
        // No service's prefix may capture them.
        for own in OWN {
            assert!(!ROUTES.iter().any(|r| r.matches(own)), "{own}");
        }
    }

    #[test]
    fn labels_are_bounded() {
        let table = RouteTable::default();
        assert_eq!(table.resolve("/api/seats/A-01").label(), "/api/seats");
        assert_eq!(table.resolve("/whatever/at/all").label(), "static");
    }
}
