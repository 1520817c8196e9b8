//! Durations in configuration: a number of seconds (`600`, `0.5`) or a human form (`"10m"`, `"1h 30m"`, `"7days"`).
//!
//! For `#[serde(with = "signin_domain::duration")]` on a [`std::time::Duration`] field.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

/// Reads a duration from seconds or a `humantime` form.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    deserializer.deserialize_any(DurationVisitor)
}

/// Writes a duration as a `humantime` form (`"15m"`).
pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&humantime::format_duration(*duration).to_string())
}

/// Parses the text form alone, e.g. for a command-line flag.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<f64>() {
        return from_secs(secs);
    }
    humantime::parse_duration(text)
        .map_err(|err| format!("`{text}` is not a duration ({err}); write seconds or e.g. \"15m\", \"7days\""))
}

fn from_secs(secs: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{secs} is not a usable number of seconds"))
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number of seconds or a duration such as \"15m\"")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        Ok(Duration::from_secs(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        u64::try_from(v).map(Duration::from_secs).map_err(|_| E::custom(format!("{v} seconds is negative")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
        from_secs(v).map_err(E::custom)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        parse(v).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    struct Holder {
        #[serde(with = "super")]
        d: Duration,
    }

    fn read(json: &str) -> Result<Duration, String> {
        serde_json::from_str::<Holder>(json).map(|h| h.d).map_err(|e| e.to_string())
    }

    #[test]
    fn seconds_and_human_forms_are_read() {
        assert_eq!(read(r#"{"d": 900}"#), Ok(Duration::from_secs(900)));
        assert_eq!(read(r#"{"d": 0.5}"#), Ok(Duration::from_millis(500)));
        assert_eq!(read(r#"{"d": "15m"}"#), Ok(Duration::from_secs(900)));
        assert_eq!(read(r#"{"d": "900"}"#), Ok(Duration::from_secs(900)));
        assert_eq!(read(r#"{"d": "1h 30m"}"#), Ok(Duration::from_secs(5400)));
        assert_eq!(read(r#"{"d": "7days"}"#), Ok(Duration::from_secs(7 * 86400)));
    }

    #[test]
    fn bad_values_say_what_is_expected() {
        assert!(read(r#"{"d": -1}"#).expect_err("negative").contains("negative"));
        assert!(read(r#"{"d": "soon"}"#).expect_err("words").contains("not a duration"));
        assert!(read(r#"{"d": true}"#).expect_err("bool").contains("a number of seconds"));
    }
}
