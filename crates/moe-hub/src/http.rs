//! HTTP for the Hub: one ureq agent with connect and read timeouts, retries
//! with exponential backoff on what may pass (no connection, a timeout, 5xx,
//! 429), and redirects followed by hand so that every response in the chain
//! is seen by the caller before the next request (HUB-1, HUB-4).

use std::time::Duration;

use crate::error::{HubError, Result};

/// Network settings; `None` takes the environment variable named, else the
/// default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetOptions {
    /// Time to open a connection (`MOE_HUB_CONNECT_TIMEOUT`, seconds; 10).
    pub connect_timeout: Option<Duration>,
    /// Longest wait for the next bytes of an answer (`HF_HUB_DOWNLOAD_TIMEOUT`,
    /// seconds, as in Python's `huggingface_hub`; 60).
    pub read_timeout: Option<Duration>,
    /// Tries after the first on a retryable failure (`MOE_HUB_RETRIES`; 3).
    pub retries: Option<u32>,
    /// Wait before the first retry, doubled at each (`MOE_HUB_BACKOFF_MS`,
    /// milliseconds; 1000).
    pub backoff: Option<Duration>,
}

/// [`NetOptions`] with every value decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Net {
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub retries: u32,
    pub backoff: Duration,
}

/// Most redirects followed for one request.
const MAX_REDIRECTS: usize = 8;
/// The longest single wait between tries, whatever the backoff.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

impl NetOptions {
    pub(crate) fn decide(&self) -> Result<Net> {
        let secs = |v: f64| Duration::from_secs_f64(v);
        let connect = pick(self.connect_timeout, "MOE_HUB_CONNECT_TIMEOUT", secs, 10.0)?;
        let read = pick(self.read_timeout, "HF_HUB_DOWNLOAD_TIMEOUT", secs, 60.0)?;
        let backoff = pick(
            self.backoff,
            "MOE_HUB_BACKOFF_MS",
            |v| Duration::from_secs_f64(v / 1000.0),
            1000.0,
        )?;
        let retries = match self.retries {
            Some(r) => r,
            None => match std::env::var("MOE_HUB_RETRIES") {
                Ok(v) => v.trim().parse().map_err(|_| {
                    HubError::Invalid(format!("MOE_HUB_RETRIES = {v:?} is not a whole number"))
                })?,
                Err(_) => 3,
            },
        };
        if connect.is_zero() || read.is_zero() {
            return Err(HubError::Invalid("a Hub timeout must be above 0".into()));
        }
        Ok(Net {
            connect_timeout: connect,
            read_timeout: read,
            retries: retries.min(20),
            backoff,
        })
    }
}

/// The option, else the environment variable (a positive number), else the default.
fn pick(
    option: Option<Duration>,
    var: &str,
    unit: impl Fn(f64) -> Duration,
    default: f64,
) -> Result<Duration> {
    if let Some(d) = option {
        return Ok(d);
    }
    match std::env::var(var) {
        Ok(v) => match v.trim().parse::<f64>() {
            Ok(x) if (0.0..1e9).contains(&x) => Ok(unit(x)),
            _ => Err(HubError::Invalid(format!(
                "{var} = {v:?} is not a number of {}",
                if var.ends_with("_MS") {
                    "milliseconds"
                } else {
                    "seconds"
                }
            ))),
        },
        Err(_) => Ok(unit(default)),
    }
}

/// One failed try: retried or not.
pub(crate) enum Failure {
    /// May pass on another try (timeout, no connection, 5xx, a cut body).
    Transient(HubError),
    /// Will not pass (4xx, a bad header, a lying size).
    Fatal(HubError),
}

impl From<HubError> for Failure {
    fn from(e: HubError) -> Self {
        Failure::Fatal(e)
    }
}

/// The agent and its settings.
#[derive(Clone)]
pub(crate) struct Client {
    agent: ureq::Agent,
    pub endpoint: url::Url,
    token: Option<String>,
    net: Net,
}

impl Client {
    pub fn new(endpoint: &str, token: Option<String>, net: Net) -> Result<Self> {
        let endpoint = url::Url::parse(endpoint.trim_end_matches('/'))
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                HubError::Invalid(format!("endpoint {endpoint:?} is not an http(s) URL"))
            })?;
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(net.connect_timeout)
            .timeout_read(net.read_timeout)
            .timeout_write(net.read_timeout)
            .redirects(0)
            .user_agent(concat!("moe-hub/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Self {
            agent,
            endpoint,
            token,
            net,
        })
    }

    /// `{endpoint}/{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.endpoint.as_str().trim_end_matches('/'))
    }

    /// Runs `attempt` until it succeeds, fails for good, or the retries are
    /// spent, waiting `backoff × 2ⁿ` between tries.
    pub fn retrying<T>(&self, mut attempt: impl FnMut() -> Result<T, Failure>) -> Result<T> {
        let mut wait = self.net.backoff;
        for tries in 0.. {
            match attempt() {
                Ok(v) => return Ok(v),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Transient(e)) if tries >= self.net.retries => {
                    return Err(with_tries(e, tries + 1));
                }
                Err(Failure::Transient(_)) => {
                    std::thread::sleep(wait.min(MAX_BACKOFF));
                    wait = wait.saturating_mul(2);
                }
            }
        }
        unreachable!("the loop returns")
    }

    /// GETs `url`, following redirects by hand: `inspect` sees every
    /// response (redirects included) before anything else happens and may
    /// refuse it. Returns the final 2xx response.
    pub fn get(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        inspect: &mut dyn FnMut(&ureq::Response) -> Result<()>,
    ) -> Result<ureq::Response, Failure> {
        let mut current =
            url::Url::parse(url).map_err(|e| HubError::Invalid(format!("{url}: {e}")))?;
        for _ in 0..=MAX_REDIRECTS {
            let mut request = self.agent.request_url("GET", &current);
            for (k, v) in headers {
                request = request.set(k, v);
            }
            if let Some(token) = &self.token
                && current.origin() == self.endpoint.origin()
            {
                request = request.set("Authorization", &format!("Bearer {token}"));
            }
            let response = match request.call() {
                Ok(r) => r,
                Err(ureq::Error::Status(code, r)) => {
                    inspect(&r)?;
                    return Err(status_failure(current.as_str(), code, r));
                }
                Err(ureq::Error::Transport(t)) => {
                    return Err(Failure::Transient(HubError::Http {
                        url: current.to_string(),
                        reason: t.to_string(),
                    }));
                }
            };
            inspect(&response)?;
            if !(300..400).contains(&response.status()) {
                return Ok(response);
            }
            let location = response.header("Location").ok_or_else(|| HubError::Http {
                url: current.to_string(),
                reason: format!("redirect {} without a Location", response.status()),
            })?;
            current = current
                .join(location)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .ok_or_else(|| HubError::Http {
                    url: current.to_string(),
                    reason: format!("redirect to {location:?}, not an http(s) URL"),
                })?;
        }
        Err(Failure::Fatal(HubError::Http {
            url: url.to_string(),
            reason: format!("more than {MAX_REDIRECTS} redirects"),
        }))
    }
}

fn status_failure(url: &str, code: u16, response: ureq::Response) -> Failure {
    let hint = match code {
        401 | 403 => " (a private or gated repo needs HF_TOKEN)",
        404 => " (no such repo, revision or file)",
        _ => "",
    };
    let error = HubError::Http {
        url: url.to_string(),
        reason: format!(
            "the server answered {code} {}{hint}",
            response.status_text()
        ),
    };
    if code >= 500 || code == 429 || code == 408 {
        Failure::Transient(error)
    } else {
        Failure::Fatal(error)
    }
}

fn with_tries(e: HubError, tries: u32) -> HubError {
    if tries <= 1 {
        return e;
    }
    let more = format!(" (after {tries} tries)");
    match e {
        HubError::Http { url, reason } => HubError::Http {
            url,
            reason: reason + &more,
        },
        HubError::Incomplete { name, reason } => HubError::Incomplete {
            name,
            reason: reason + &more,
        },
        other => other,
    }
}
