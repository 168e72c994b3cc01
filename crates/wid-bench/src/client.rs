//! A minimal HTTPS client on hyper's connection API: one TLS connection per [`Conn`], HTTP/1.1 with
//! keep-alive or HTTP/2 (ALPN), requests sent as they are given (no pool, no retries, no redirects),
//! so the load generator decides exactly how many connections and requests are in flight.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, bail};
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// HTTP version of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Proto {
    #[serde(rename = "HTTP/1.1")]
    H1,
    #[serde(rename = "HTTP/2")]
    H2,
}

/// Where requests go: a loopback address, the TLS name and `Host`/`:authority` to present, and CAs.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// Host name for SNI and certificate verification.
    pub server_name: String,
    /// `Host` header / `:authority` (host:port).
    pub authority: String,
    h1: Arc<ClientConfig>,
    h2: Arc<ClientConfig>,
}

impl Target {
    /// A target whose certificate chains to one of the CA certificates in `ca_pem`.
    pub fn new(addr: SocketAddr, server_name: &str, ca_pem: &[u8]) -> anyhow::Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem) {
            roots.add(cert.context("CA PEM")?).context("CA certificate")?;
        }
        let config = |alpn: &[u8]| -> anyhow::Result<Arc<ClientConfig>> {
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let mut c = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots.clone())
                .with_no_client_auth();
            c.alpn_protocols = vec![alpn.to_vec()];
            Ok(Arc::new(c))
        };
        Ok(Self {
            addr,
            server_name: server_name.to_string(),
            authority: format!("{server_name}:{}", addr.port()),
            h1: config(b"http/1.1")?,
            h2: config(b"h2")?,
        })
    }

    /// The same listener under another name (a vault host on wid's listener).
    pub fn with_name(&self, server_name: &str) -> Self {
        Self {
            server_name: server_name.to_string(),
            authority: format!("{server_name}:{}", self.addr.port()),
            ..self.clone()
        }
    }

    /// Opens a connection.
    pub async fn connect(&self, proto: Proto) -> anyhow::Result<Conn> {
        let tcp = TcpStream::connect(self.addr).await.with_context(|| format!("connect {}", self.addr))?;
        tcp.set_nodelay(true)?;
        let config = match proto {
            Proto::H1 => self.h1.clone(),
            Proto::H2 => self.h2.clone(),
        };
        let name = ServerName::try_from(self.server_name.clone()).context("server name")?;
        let tls = TlsConnector::from(config).connect(name, tcp).await.context("TLS handshake")?;
        if proto == Proto::H2 && tls.get_ref().1.alpn_protocol() != Some(b"h2") {
            bail!("{} did not negotiate HTTP/2", self.authority);
        }
        let io = TokioIo::new(tls);
        let sender = match proto {
            Proto::H1 => {
                let (send, conn) = http1::handshake(io).await?;
                tokio::spawn(conn);
                Sender::H1(send)
            }
            Proto::H2 => {
                let (send, conn) = http2::handshake(TokioExecutor::new(), io).await?;
                tokio::spawn(conn);
                Sender::H2(send)
            }
        };
        Ok(Conn { sender, authority: self.authority.clone() })
    }
}

/// One request, built by a workload.
#[derive(Clone, Debug)]
pub struct Req {
    pub method: Method,
    /// Path and query.
    pub path: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

impl Req {
    pub fn get(path: impl Into<String>) -> Self {
        Self { method: Method::GET, path: path.into(), headers: Vec::new(), body: Bytes::new() }
    }

    pub fn with_body(method: Method, path: impl Into<String>, content_type: &'static str, body: Vec<u8>) -> Self {
        Self {
            method,
            path: path.into(),
            headers: vec![(http::header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
            body: Bytes::from(body),
        }
    }

    pub fn json(method: Method, path: impl Into<String>, body: &serde_json::Value) -> Self {
        Self::with_body(method, path, "application/json", body.to_string().into_bytes())
    }

    pub fn form(path: impl Into<String>, fields: &[(&str, &str)]) -> Self {
        let body = serde_urlencoded::to_string(fields).unwrap_or_default();
        Self::with_body(Method::POST, path, "application/x-www-form-urlencoded", body.into_bytes())
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((HeaderName::from_static(name), v));
        }
        self
    }

    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }
}

enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

/// A client connection.
pub struct Conn {
    sender: Sender,
    authority: String,
}

impl Conn {
    /// Another handle on an HTTP/2 connection (its requests are streams of the same connection);
    /// `None` for HTTP/1.1.
    pub fn share(&self) -> Option<Conn> {
        match &self.sender {
            Sender::H2(s) => Some(Conn { sender: Sender::H2(s.clone()), authority: self.authority.clone() }),
            Sender::H1(_) => None,
        }
    }

    /// Sends a request and reads the whole response.
    pub async fn send(&mut self, req: &Req) -> anyhow::Result<(u16, Bytes)> {
        let uri = match self.sender {
            Sender::H1(_) => req.path.clone(),
            Sender::H2(_) => format!("https://{}{}", self.authority, req.path),
        };
        let mut b = Request::builder().method(req.method.clone()).uri(uri);
        if let Sender::H1(_) = self.sender {
            b = b.header(http::header::HOST, &self.authority);
        }
        for (k, v) in &req.headers {
            b = b.header(k, v);
        }
        let request = b.body(Full::new(req.body.clone()))?;
        let resp = match &mut self.sender {
            Sender::H1(s) => {
                s.ready().await?;
                s.send_request(request).await?
            }
            Sender::H2(s) => {
                s.ready().await?;
                s.send_request(request).await?
            }
        };
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    /// Sends a request and parses a JSON reply (Null when empty), failing on an unexpected status.
    pub async fn json(&mut self, req: &Req, ok: &[u16]) -> anyhow::Result<serde_json::Value> {
        let (status, body) = self.send(req).await?;
        if !ok.contains(&status) {
            bail!("{} {} → {status}: {}", req.method, req.path, String::from_utf8_lossy(&body));
        }
        if body.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&body).with_context(|| format!("{} {}: reply is not JSON", req.method, req.path))
    }
}
