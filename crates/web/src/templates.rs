//! Page templates, compiled into the binary from the workspace's `templates/` folder.

use std::sync::Arc;

use minijinja::{Environment, Value};
use serde::Serialize;

/// The templates, embedded at build time so the binary serves its pages without any files beside it.
const SOURCES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../../templates/base.html")),
    ("login.html", include_str!("../../../templates/login.html")),
    ("profile.html", include_str!("../../../templates/profile.html")),
    ("error.html", include_str!("../../../templates/error.html")),
    ("sessions.html", include_str!("../../../templates/sessions.html")),
];

/// One minijinja environment, built once at start-up and shared.
#[derive(Clone)]
pub struct Templates(Arc<Environment<'static>>);

impl Templates {
    /// Loads and checks every template; fails at start-up, not at the first request, when one is broken.
    pub fn new() -> Result<Self, minijinja::Error> {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
        env.set_formatter(html_formatter);
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        for (name, source) in SOURCES {
            env.add_template(name, source)?;
        }
        Ok(Self(Arc::new(env)))
    }

    /// Renders a page.
    pub fn render<C: Serialize>(&self, name: &str, context: C) -> Result<String, minijinja::Error> {
        self.0.get_template(name)?.render(minijinja::value::Serde(context))
    }
}

/// HTML-escapes strings the way the HTML specification needs (`&`, `<`, `>`, `"`, `'`), but leaves `/` alone, so
/// URLs in attributes (the profile picture) read as written. Everything else goes to minijinja's own formatter.
fn html_formatter(
    out: &mut minijinja::Output,
    state: &mut minijinja::State,
    value: &Value,
) -> Result<(), minijinja::Error> {
    match value.as_str() {
        Some(text) if matches!(state.auto_escape(), minijinja::AutoEscape::Html) && !value.is_safe() => {
            let mut rest = text;
            while let Some(at) = rest.find(['&', '<', '>', '"', '\'']) {
                let (plain, tail) = rest.split_at(at);
                out.write_str(plain).map_err(minijinja::Error::from)?;
                let entity = match tail.as_bytes()[0] {
                    b'&' => "&amp;",
                    b'<' => "&lt;",
                    b'>' => "&gt;",
                    b'"' => "&quot;",
                    _ => "&#x27;",
                };
                out.write_str(entity).map_err(minijinja::Error::from)?;
                rest = &tail[1..];
            }
            out.write_str(rest).map_err(minijinja::Error::from)
        }
        _ => minijinja::escape_formatter(out, state, value),
    }
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Templates")
    }
}

#[cfg(test)]
mod tests {
    use minijinja::context;

    use super::*;

    fn env() -> Environment<'static> {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
        env.set_formatter(html_formatter);
        env
    }

    #[test]
    fn markup_is_escaped_but_urls_keep_their_slashes() {
        let html = env()
            .render_str(
                r#"<img src="{{ url }}" alt="{{ text }}">{{ n }}{{ raw|safe }}"#,
                context! { url => "https://x.example/a/b?c=1&d=2", text => r#"<b> "q" 's'"#, n => 5, raw => "<i>" },
            )
            .expect("renders");
        assert_eq!(
            html,
            r#"<img src="https://x.example/a/b?c=1&amp;d=2" alt="&lt;b&gt; &quot;q&quot; &#x27;s&#x27;">5<i>"#
        );
    }

    #[test]
    fn every_page_template_loads() {
        assert!(Templates::new().is_ok());
    }
}
