//! What a log line or an error may show of a URL that carries a credential (a
//! database's, a broker's): everything but the password, and the query, which may
//! hold one too.

/// `url` with its password (and any query) replaced by `***`.
pub fn url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            if parsed.query().is_some() {
                parsed.set_query(Some("***"));
            }
            parsed.to_string()
        }
        // Not a URL the parser takes (a password with a bare '/' or '#'): hide
        // everything between the scheme and the last '@'.
        Err(_) => match (url.split_once("://"), url.rfind('@')) {
            (Some((scheme, _)), Some(at)) => format!("{scheme}://***{}", &url[at..]),
            _ => url.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::url;

    #[test]
    fn a_password_never_reaches_a_log_line() {
        assert_eq!(
            url("postgres://gw:s3cr@t:x@db.example/hub?sslmode=require"),
            "postgres://gw:***@db.example/hub?***"
        );
        assert_eq!(url("postgres://gw:a/b#c@db/hub"), "postgres://***@db/hub");
        assert_eq!(url("postgres://gw@db/hub"), "postgres://gw@db/hub");
        assert_eq!(url("postgres://gw@db/hub?password=x"), "postgres://gw@db/hub?***");
        assert_eq!(
            url("nats://user:pw@127.0.0.1:4222"),
            "nats://user:***@127.0.0.1:4222"
        );
        assert_eq!(
            url("sqlite:///var/lib/gattway/gattway.db"),
            "sqlite:///var/lib/gattway/gattway.db"
        );
        assert_eq!(url("sqlite::memory:"), "sqlite::memory:");
    }
}
