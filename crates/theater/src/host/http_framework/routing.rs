//! Which handler answers a request: routes match a method and a path,
//! middleware matches a path prefix.
//!
//! A route's path matches exactly, or it is a template whose `{name}`
//! segments match any one non-empty segment (`/api/chats/{id}` matches
//! `/api/chats/42`), and whose final segment may be a catch-all `{*name}`
//! matching the rest of the path, one or more segments, slashes included
//! (`/api/labels/{*name}` matches `/api/labels/docs/readme`). The actor
//! still sees the request's `uri` and reads the segments itself. When
//! several routes match, an exact path beats a template, a template beats
//! a catch-all, more literal segments beat fewer, an exact method beats
//! `*`, and then the older route wins.

/// Longest path a route or middleware may be registered with.
pub const MAX_PATH_LEN: usize = 2048;

/// A route's method: exact (case-insensitive, kept upper case) or `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MethodMatch {
    Any,
    Exact(String),
}

impl MethodMatch {
    pub fn parse(method: &str) -> Result<Self, String> {
        let method = method.trim();
        if method == "*" {
            return Ok(Self::Any);
        }
        let valid = !method.is_empty()
            && method.len() <= 32
            && method
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !valid {
            return Err(format!(
                "`{method}` is not an HTTP method: use e.g. GET, POST, or * for any method"
            ));
        }
        Ok(Self::Exact(method.to_ascii_uppercase()))
    }

    fn matches(&self, method: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(m) => m == method,
        }
    }
}

impl std::fmt::Display for MethodMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::Exact(m) => f.write_str(m),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param,
    /// `{*name}`, always the last segment: the rest of the path.
    Rest,
}

/// A route's path: exact, or a template with `{name}` segments and perhaps
/// a final `{*name}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    raw: String,
    /// `None` for an exact path.
    template: Option<Vec<Segment>>,
}

impl PathPattern {
    pub fn parse(path: &str) -> Result<Self, String> {
        check_path(path)?;
        if !path.contains('{') && !path.contains('}') {
            return Ok(Self {
                raw: path.to_owned(),
                template: None,
            });
        }
        let mut names = Vec::new();
        let mut segments = Vec::new();
        let mut parts = path.split('/').peekable();
        while let Some(part) = parts.next() {
            if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                let (name, segment) = match name.strip_prefix('*') {
                    Some(_) if parts.peek().is_some() => {
                        return Err(format!(
                            "`{path}`: a catch-all `{{{name}}}` must be the last segment, like `/files/{{*path}}`"
                        ));
                    }
                    Some(rest) => (rest, Segment::Rest),
                    None => (name, Segment::Param),
                };
                let valid = !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if !valid {
                    return Err(format!(
                        "`{path}`: `{{{name}}}` is not a parameter name (letters, digits, `_` and `-`)"
                    ));
                }
                if names.contains(&name) {
                    return Err(format!("`{path}`: parameter `{{{name}}}` appears twice"));
                }
                names.push(name);
                segments.push(segment);
            } else if part.contains('{') || part.contains('}') {
                return Err(format!(
                    "`{path}`: a parameter must be a whole segment, like `/items/{{id}}`"
                ));
            } else {
                segments.push(Segment::Literal(part.to_owned()));
            }
        }
        Ok(Self {
            raw: path.to_owned(),
            template: Some(segments),
        })
    }

    pub fn matches(&self, path: &str) -> bool {
        let Some(template) = &self.template else {
            return self.raw == path;
        };
        // What is left of the path after the segments matched so far.
        let mut rest = Some(path);
        for segment in template {
            let Some(text) = rest else {
                return false;
            };
            let part = match (segment, text.split_once('/')) {
                (Segment::Rest, _) | (_, None) => {
                    rest = None;
                    text
                }
                (_, Some((part, after))) => {
                    rest = Some(after);
                    part
                }
            };
            let fits = match segment {
                Segment::Literal(literal) => literal == part,
                Segment::Param | Segment::Rest => !part.is_empty(),
            };
            if !fits {
                return false;
            }
        }
        rest.is_none()
    }

    /// Higher is more specific: exact, then templates without a catch-all,
    /// then by literal segments.
    fn rank(&self) -> (bool, bool, usize) {
        match &self.template {
            None => (true, true, 0),
            Some(segments) => (
                false,
                !segments.contains(&Segment::Rest),
                segments
                    .iter()
                    .filter(|s| matches!(s, Segment::Literal(_)))
                    .count(),
            ),
        }
    }
}

/// A path a route or middleware can be registered with.
pub fn check_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("`{path}` must start with `/`"));
    }
    if path.len() > MAX_PATH_LEN {
        return Err(format!(
            "a path of {} bytes is longer than the limit of {MAX_PATH_LEN}",
            path.len()
        ));
    }
    if path.contains(['?', '#']) || path.chars().any(char::is_whitespace) {
        return Err(format!(
            "`{path}` must be a bare path: no query, fragment or whitespace"
        ));
    }
    Ok(())
}

#[derive(Debug, Clone)]
pub struct Route {
    pub id: u64,
    pub method: MethodMatch,
    pub pattern: PathPattern,
    pub handler: u64,
}

#[derive(Debug, Clone)]
pub struct Middleware {
    pub id: u64,
    pub prefix: String,
    pub handler: u64,
}

/// The route for `method` and `path` (the path without its query).
pub fn find_route<'a>(routes: &'a [Route], method: &str, path: &str) -> Option<&'a Route> {
    routes
        .iter()
        .filter(|r| r.method.matches(method) && r.pattern.matches(path))
        .max_by(|a, b| {
            let key = |r: &Route| {
                let (exact, bounded, literals) = r.pattern.rank();
                (
                    exact,
                    bounded,
                    literals,
                    r.method != MethodMatch::Any,
                    std::cmp::Reverse(r.id),
                )
            };
            key(a).cmp(&key(b))
        })
}

/// The handlers of the middleware whose prefix `path` starts with, in the
/// order they were added.
pub fn middleware_for(middleware: &[Middleware], path: &str) -> Vec<u64> {
    middleware
        .iter()
        .filter(|m| path.starts_with(&m.prefix))
        .map(|m| m.handler)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(id: u64, method: &str, path: &str) -> Route {
        Route {
            id,
            method: MethodMatch::parse(method).unwrap(),
            pattern: PathPattern::parse(path).unwrap(),
            handler: id * 10,
        }
    }

    #[test]
    fn exact_paths_and_templates_match_as_documented() {
        let exact = PathPattern::parse("/api/count").unwrap();
        assert!(exact.matches("/api/count"));
        assert!(!exact.matches("/api/count/"));
        assert!(!exact.matches("/api"));

        let template = PathPattern::parse("/api/chats/{id}/messages").unwrap();
        assert!(template.matches("/api/chats/42/messages"));
        assert!(!template.matches("/api/chats//messages"));
        assert!(!template.matches("/api/chats/42"));
        assert!(!template.matches("/api/chats/42/messages/7"));
    }

    #[test]
    fn a_catch_all_matches_the_rest_of_the_path() {
        let rest = PathPattern::parse("/api/labels/{*name}").unwrap();
        assert!(rest.matches("/api/labels/readme"));
        assert!(rest.matches("/api/labels/docs/readme"));
        assert!(rest.matches("/api/labels/docs/"));
        assert!(!rest.matches("/api/labels/"));
        assert!(!rest.matches("/api/labels"));
        assert!(!rest.matches("/api/label/x"));
        let both = PathPattern::parse("/u/{user}/files/{*path}").unwrap();
        assert!(both.matches("/u/ann/files/a/b.txt"));
        assert!(!both.matches("/u//files/a"));
        let root = PathPattern::parse("/{*all}").unwrap();
        assert!(root.matches("/anything/at/all"));
        assert!(!root.matches("/"));
    }

    #[test]
    fn exact_beats_template_beats_catch_all() {
        let routes = [
            route(1, "GET", "/docs/{*name}"),
            route(2, "GET", "/docs/{name}"),
            route(3, "GET", "/docs/index"),
            route(4, "*", "/{*all}"),
        ];
        assert_winners(
            &routes,
            &[
                ("GET", "/docs/index", Some(3)),
                ("GET", "/docs/readme", Some(2)),
                ("GET", "/docs/guide/intro", Some(1)),
                ("GET", "/elsewhere", Some(4)),
            ],
        );
    }

    /// Which route answers each method and path, by id.
    fn assert_winners(routes: &[Route], expected: &[(&str, &str, Option<u64>)]) {
        for &(method, path, id) in expected {
            let found = find_route(routes, method, path).map(|r| r.id);
            assert_eq!(found, id, "{method} {path}");
        }
    }

    #[test]
    fn bad_paths_and_methods_are_refused_with_a_reason() {
        for bad in [
            "api",
            "/a?b=1",
            "/a b",
            "/a/{}",
            "/a/x{id}",
            "/{a}/{a}",
            "/{a b}",
            "/{*rest}/more",
            "/{*}",
            "/{*a}/{*b}",
            "/a/{*x*}",
        ] {
            assert!(PathPattern::parse(bad).is_err(), "{bad} was accepted");
        }
        assert_eq!(MethodMatch::parse("get").unwrap().to_string(), "GET");
        assert_eq!(MethodMatch::parse("*").unwrap(), MethodMatch::Any);
        assert!(MethodMatch::parse("GE T").is_err());
        assert!(MethodMatch::parse("").is_err());
    }

    #[test]
    fn the_most_specific_route_wins() {
        let routes = [
            route(1, "*", "/items/{id}"),
            route(2, "GET", "/items/{id}"),
            route(3, "GET", "/items/new"),
            route(4, "GET", "/{a}/{b}"),
            route(5, "POST", "/items"),
        ];
        assert_winners(
            &routes,
            &[
                ("GET", "/items/new", Some(3)),
                ("GET", "/items/7", Some(2)),
                ("DELETE", "/items/7", Some(1)),
                ("GET", "/other/7", Some(4)),
                ("POST", "/items", Some(5)),
                ("GET", "/items", None),
            ],
        );
    }

    #[test]
    fn middleware_matches_by_prefix_in_order_added() {
        let middleware = [
            Middleware {
                id: 1,
                prefix: "/".into(),
                handler: 7,
            },
            Middleware {
                id: 2,
                prefix: "/admin".into(),
                handler: 8,
            },
        ];
        assert_eq!(middleware_for(&middleware, "/admin/users"), [7, 8]);
        assert_eq!(middleware_for(&middleware, "/public"), [7]);
    }
}
