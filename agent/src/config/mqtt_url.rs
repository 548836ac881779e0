//! The broker URL: `mqtt://node-<id>:<password>@host:port`, and a form of it that is safe to log.

use std::fmt;

use percent_encoding::percent_decode_str;

/// Where the broker is and how this node logs in.
#[derive(Clone)]
pub struct MqttEndpoint {
    /// Host name or IP address.
    pub host: String,
    /// TCP port (1883 when the URL has none).
    pub port: u16,
    /// `(user, password)`, percent-decoded; `None` for an anonymous broker.
    pub credentials: Option<(String, String)>,
}

impl MqttEndpoint {
    /// Parses and checks a broker URL for node `node_id`: plain TCP only, and a user, if any,
    /// of `node-<node_id>` (the broker ties that user to the client id `sortie-node-<node_id>`).
    pub fn parse(text: &str, node_id: u64) -> Result<Self, String> {
        let url = url::Url::parse(text.trim())
            .map_err(|e| format!("not a URL ({e}): {}", RedactedUrl(text)))?;
        match url.scheme() {
            "mqtt" | "tcp" => {}
            "mqtts" | "ssl" | "wss" | "ws" => {
                return Err(format!(
                    "{}:// is not supported: this build speaks plain MQTT over TCP only (mqtt://)",
                    url.scheme()
                ))
            }
            other => return Err(format!("unsupported scheme {other:?}; use mqtt://")),
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("has no host")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
        let user = decode(url.username());
        let credentials = if user.is_empty() {
            None
        } else {
            let expected = format!("node-{node_id}");
            if user != expected {
                return Err(format!(
                    "user is {user:?} but node_id is {node_id}: the broker only lets {expected:?} \
                     log in as client sortie-node-{node_id}"
                ));
            }
            Some((user, url.password().map(decode).unwrap_or_default()))
        };
        if !url.path().trim_matches('/').is_empty() || url.query().is_some() {
            return Err("must not have a path or query (the topic prefix is mqtt_prefix)".into());
        }
        Ok(MqttEndpoint {
            host,
            port: url.port().unwrap_or(1883),
            credentials,
        })
    }
}

impl fmt::Debug for MqttEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for MqttEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.credentials {
            Some((user, _)) => write!(f, "mqtt://{user}:***@{}:{}", self.host, self.port),
            None => write!(f, "mqtt://{}:{}", self.host, self.port),
        }
    }
}

/// A URL for logs and error messages, with any password replaced by `***`.
pub struct RedactedUrl<'a>(pub &'a str);

impl fmt::Display for RedactedUrl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Work on the text, not a parsed URL, so even an unparsable URL is redacted.
        let text = self.0;
        let Some(scheme_end) = text.find("://").map(|i| i + 3) else {
            return f.write_str(text);
        };
        let authority_end = text[scheme_end..]
            .find(['/', '?', '#'])
            .map_or(text.len(), |i| scheme_end + i);
        let authority = &text[scheme_end..authority_end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                let user = userinfo.split(':').next().unwrap_or("");
                write!(
                    f,
                    "{}{user}:***{}",
                    &text[..scheme_end],
                    &text[scheme_end + at..]
                )
            }
            None => f.write_str(text),
        }
    }
}

impl fmt::Debug for RedactedUrl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}
