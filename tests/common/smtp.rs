//! A real SMTP server on 127.0.0.1 for the tests (the email action and the email notification
//! backend): ESMTP with AUTH PLAIN/LOGIN, STARTTLS or implicit TLS (a certificate from a CA
//! generated here), and scripted refusals. Every accepted message is recorded.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// One message as received.
#[derive(Debug, Clone, Default)]
pub struct Mail {
    pub from: String,
    pub rcpt: Vec<String>,
    pub data: String,
    /// `user` of a successful AUTH.
    pub auth_user: Option<String>,
    /// The message arrived over TLS.
    pub tls: bool,
}

/// How the sink behaves.
#[derive(Clone, Default)]
pub struct Options {
    /// Offer STARTTLS with this configuration.
    pub starttls: Option<Arc<rustls::ServerConfig>>,
    /// Speak TLS from the first byte (smtps).
    pub implicit_tls: Option<Arc<rustls::ServerConfig>>,
    /// Accept only these credentials (AUTH required).
    pub credentials: Option<(String, String)>,
    /// RCPT TO this address answers 550 (permanent).
    pub reject: Option<String>,
    /// RCPT TO this address answers 451 (transient).
    pub defer: Option<String>,
}

pub struct Sink {
    pub addr: SocketAddr,
    pub mails: Arc<Mutex<Vec<Mail>>>,
}

impl Sink {
    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().unwrap().clone()
    }
}

/// A CA and a server certificate for `localhost` / 127.0.0.1.
pub struct Pki {
    pub ca_pem: String,
    pub server: Arc<rustls::ServerConfig>,
}

pub fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "mutask SMTP test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        server: Arc::new(config),
    }
}

pub async fn start(options: Options) -> Sink {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mails = Arc::new(Mutex::new(Vec::new()));
    let store = mails.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let options = options.clone();
            let mails = store.clone();
            tokio::spawn(async move {
                if let Some(cfg) = &options.implicit_tls {
                    let Ok(tls) = tokio_rustls::TlsAcceptor::from(cfg.clone())
                        .accept(tcp)
                        .await
                    else {
                        return;
                    };
                    let _ = session(tls, &options, &mails, true, true).await;
                    return;
                }
                if let Ok(Some(tcp)) = session(tcp, &options, &mails, false, true).await {
                    let cfg = options.starttls.clone().unwrap();
                    let Ok(tls) = tokio_rustls::TlsAcceptor::from(cfg).accept(tcp).await else {
                        return;
                    };
                    let _ = session(tls, &options, &mails, true, false).await;
                }
            });
        }
    });
    Sink { addr, mails }
}

/// One SMTP session; `Some(stream)` when the client asked for STARTTLS (the caller upgrades).
async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    o: &Options,
    mails: &Arc<Mutex<Vec<Mail>>>,
    tls: bool,
    greet: bool,
) -> std::io::Result<Option<S>> {
    let mut s = BufReader::new(stream);
    if greet {
        s.get_mut().write_all(b"220 sink ESMTP ready\r\n").await?;
    }
    let mut mail = Mail {
        tls,
        ..Mail::default()
    };
    let mut auth_user = None;
    let mut line = String::new();
    loop {
        line.clear();
        if s.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        let cmd = line.trim_end().to_string();
        let upper = cmd.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            let mut r = String::from("250-sink\r\n250-AUTH PLAIN LOGIN\r\n");
            if o.starttls.is_some() && !tls {
                r.push_str("250-STARTTLS\r\n");
            }
            r.push_str("250 8BITMIME\r\n");
            r
        } else if upper == "STARTTLS" && o.starttls.is_some() && !tls {
            s.get_mut().write_all(b"220 go ahead\r\n").await?;
            return Ok(Some(s.into_inner()));
        } else if upper.starts_with("AUTH PLAIN") {
            let b64 = cmd[10..].trim();
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap_or_default();
            let parts: Vec<String> = raw
                .split(|b| *b == 0)
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect();
            let (u, p) = (
                parts.get(1).cloned().unwrap_or_default(),
                parts.get(2).cloned().unwrap_or_default(),
            );
            match &o.credentials {
                Some((cu, cp)) if *cu == u && *cp == p => {
                    auth_user = Some(u);
                    "235 2.7.0 authenticated\r\n".into()
                }
                _ => "535 5.7.8 authentication failed\r\n".into(),
            }
        } else if upper.starts_with("MAIL FROM:") {
            if o.credentials.is_some() && auth_user.is_none() {
                "530 5.7.0 authentication required\r\n".into()
            } else {
                mail.from = cmd[10..].trim().trim_matches(['<', '>']).to_string();
                "250 ok\r\n".into()
            }
        } else if upper.starts_with("RCPT TO:") {
            let to = cmd[8..].trim().trim_matches(['<', '>']).to_string();
            if o.reject.as_deref() == Some(to.as_str()) {
                "550 5.1.1 no such mailbox\r\n".into()
            } else if o.defer.as_deref() == Some(to.as_str()) {
                "451 4.3.0 try again later\r\n".into()
            } else {
                mail.rcpt.push(to);
                "250 ok\r\n".into()
            }
        } else if upper == "DATA" {
            s.get_mut().write_all(b"354 end with .\r\n").await?;
            let mut data = String::new();
            loop {
                line.clear();
                if s.read_line(&mut line).await? == 0 {
                    return Ok(None);
                }
                if line == ".\r\n" {
                    break;
                }
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
            }
            mail.data = data;
            mail.auth_user = auth_user.clone();
            mails.lock().unwrap().push(std::mem::take(&mut mail));
            mail.tls = tls;
            "250 2.0.0 queued as 42\r\n".into()
        } else if upper == "RSET" || upper == "NOOP" {
            "250 ok\r\n".into()
        } else if upper == "QUIT" {
            s.get_mut().write_all(b"221 bye\r\n").await?;
            return Ok(None);
        } else {
            "502 command not implemented\r\n".into()
        };
        s.get_mut().write_all(reply.as_bytes()).await?;
    }
}
