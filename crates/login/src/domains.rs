//! Who may sign in, by domain: Google Workspace domains (the `hd` claim) and email domains.

use signin_auth::Claims;

/// The allow-lists of `[login]`: empty lists allow everyone.
#[derive(Debug, Clone, Default)]
pub(crate) struct DomainRules {
    hosted: Vec<String>,
    email: Vec<String>,
}

impl DomainRules {
    pub(crate) fn new(hosted: &[String], email: &[String]) -> Self {
        let normalise = |list: &[String]| {
            list.iter()
                .map(|d| d.trim().trim_start_matches('@').to_ascii_lowercase())
                .filter(|d| !d.is_empty())
                .collect()
        };
        Self { hosted: normalise(hosted), email: normalise(email) }
    }

    /// Why these verified claims may not sign in, in words for the person; `None` when they may.
    ///
    /// `hd` is read from the verified ID token only (never from a request parameter). The email counts only when
    /// the provider says it is verified.
    pub(crate) fn refusal(&self, claims: &Claims) -> Option<String> {
        if !self.hosted.is_empty() {
            let hd = claims.additional_str("hd").map(str::to_ascii_lowercase);
            if !hd.is_some_and(|hd| self.hosted.contains(&hd)) {
                return Some(accepts(&self.hosted));
            }
        }
        if !self.email.is_empty() {
            let verified = claims.profile.email_verified == Some(true);
            let domain = claims
                .profile
                .email
                .as_deref()
                .filter(|_| verified)
                .and_then(|email| email.rsplit_once('@'))
                .map(|(_, domain)| domain.to_ascii_lowercase());
            if !domain.is_some_and(|domain| self.email.contains(&domain)) {
                return Some(accepts(&self.email));
            }
        }
        None
    }
}

fn accepts(domains: &[String]) -> String {
    let list = match domains {
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
        [] => String::new(),
    };
    format!("This site accepts accounts from {list}. Please sign in with one of those.")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(email: &str, verified: bool, hd: Option<&str>) -> Claims {
        let mut claims = Claims::new("https://accounts.google.com", "1");
        claims.profile.email = Some(email.to_owned());
        claims.profile.email_verified = Some(verified);
        if let Some(hd) = hd {
            claims.additional.insert("hd".into(), serde_json::Value::from(hd));
        }
        claims
    }

    #[test]
    fn empty_lists_allow_everyone() {
        assert_eq!(DomainRules::new(&[], &[]).refusal(&claims("a@x.example", false, None)), None);
    }

    #[test]
    fn the_hosted_domain_comes_from_the_tokens_hd_claim() {
        let rules = DomainRules::new(&["Example.com".into()], &[]);
        assert_eq!(rules.refusal(&claims("a@example.com", true, Some("example.com"))), None);
        assert_eq!(rules.refusal(&claims("a@example.com", true, Some("EXAMPLE.COM"))), None, "case-insensitive");
        let refused = rules.refusal(&claims("a@example.com", true, None)).expect("no hd: a consumer account");
        assert!(refused.contains("example.com"), "{refused}");
        assert!(rules.refusal(&claims("a@example.com", true, Some("evil.example"))).is_some());
    }

    #[test]
    fn the_email_domain_counts_only_when_verified_and_only_after_the_last_at() {
        let rules = DomainRules::new(&[], &["example.com".into(), "example.org".into()]);
        assert_eq!(rules.refusal(&claims("a@example.org", true, None)), None);
        assert!(rules.refusal(&claims("a@example.org", false, None)).is_some(), "unverified");
        assert!(rules.refusal(&claims("a@example.com@evil.example", true, None)).is_some());
        assert!(rules.refusal(&claims("a@sub.example.com", true, None)).is_some(), "no subdomains by accident");
        let refused = rules.refusal(&claims("a@evil.example", true, None)).expect("refused");
        assert_eq!(
            refused,
            "This site accepts accounts from example.com or example.org. Please sign in with one of those."
        );
    }
}
