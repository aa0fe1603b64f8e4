//! `httpws demo`: the whole path on loopback in one process — a proxy, endpoint `bob`
//! serving a small web service, endpoint `alice` with an ingress — and one `curl -x` call
//! from alice's side to the service behind bob.

use std::io::Write;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use bytes::BytesMut;
use httpws::endpoint::agent::{Agent, AgentConfig};
use httpws::endpoint::config::{ProxyUrl, SessionConfig};
use httpws::endpoint::http1;
use httpws::endpoint::listener::ListenerConfig;
use httpws::endpoint::service::{ServiceConfig, ServiceUrl};
use httpws::proto::address::VirtualAddress;
use httpws::proxy::{self, ProxyConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::runtime::{endpoint_runtime, shutdown_signal};

/// How long the demo waits for its endpoints to register.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Where alice's ingress listens (curl -x points here).
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// Make the one call, print it, and exit (instead of running until Ctrl-C).
    #[arg(long)]
    once: bool,
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let proxy_config = ProxyConfig {
        listen: "127.0.0.1:0".parse()?,
        shards: 1,
        pin_shards: false,
        ..ProxyConfig::default()
    };
    let running = proxy::start(proxy_config).context("starting the proxy")?;
    let proxy_url = ProxyUrl::parse(&format!("ws://{}", running.local_addr()))?;
    let shutdown = running.shutdown_handle();

    let outcome = endpoint_runtime(2)?.block_on(async move {
        let service = TcpListener::bind("127.0.0.1:0").await?;
        let service_addr = service.local_addr()?;
        tokio::spawn(web_service(service));

        let bob = Agent::start(agent_config(&proxy_url, "bob", None, Some(service_addr))?).await?;
        let alice = Agent::start(agent_config(&proxy_url, "alice", Some(args.listen), None)?)
            .await
            .with_context(|| {
                format!("binding alice's ingress on {} (try --listen)", args.listen)
            })?;
        for agent in [&bob, &alice] {
            tokio::time::timeout(REGISTER_TIMEOUT, agent.session().ready())
                .await
                .context("endpoints did not register in time")?
                .map_err(|e| anyhow::anyhow!(e))?;
        }
        let ingress = alice.listen_addr().context("alice has no ingress")?;
        println!("httpws demo");
        println!("  proxy            ws://{}", proxy_url.authority);
        println!("  web service      http://{service_addr}  (served by endpoint \"bob\")");
        println!("  endpoint alice   http://{ingress}  (an HTTP proxy into the tunnel)");
        println!();
        let url = "http://bob/hello";
        println!("$ curl -x http://{ingress} {url}");
        std::io::stdout().flush().ok();
        let ok = call(ingress, url).await?;
        if !args.once {
            println!();
            println!(
                "Try it: curl -x http://{ingress} http://bob/anything   (Ctrl-C stops the demo)"
            );
            std::io::stdout().flush().ok();
            shutdown_signal().await;
        }
        alice.shutdown().await;
        bob.shutdown().await;
        anyhow::ensure!(ok, "the call through the tunnel failed");
        Ok(())
    });
    shutdown.shutdown();
    running.wait().context("stopping the proxy")?;
    outcome
}

fn agent_config(
    proxy: &ProxyUrl,
    name: &str,
    listen: Option<SocketAddr>,
    service: Option<SocketAddr>,
) -> anyhow::Result<AgentConfig> {
    let mut session = SessionConfig::new(proxy.clone());
    session.name = Some(VirtualAddress::parse(name.as_bytes())?);
    let serve = match service {
        Some(addr) => Some(ServiceConfig {
            service: ServiceUrl::parse(&format!("http://{addr}"))?,
            preserve_host: false,
            service_timeout: httpws::endpoint::service::DEFAULT_SERVICE_TIMEOUT,
            max_service_conns: 8,
            max_head_bytes: httpws::endpoint::config::DEFAULT_MAX_HEAD_BYTES,
            max_body_bytes: session.max_body_bytes(),
            max_incoming: session.max_incoming,
        }),
        None => None,
    };
    Ok(AgentConfig {
        listener: ListenerConfig {
            max_head_bytes: httpws::endpoint::config::DEFAULT_MAX_HEAD_BYTES,
            max_body_bytes: session.max_body_bytes(),
            max_clients: 64,
            idle_timeout: httpws::endpoint::listener::DEFAULT_CLIENT_IDLE_TIMEOUT,
            client_timeout: httpws::endpoint::listener::DEFAULT_CLIENT_TIMEOUT,
            request_timeout: httpws::endpoint::listener::DEFAULT_REQUEST_TIMEOUT,
            allowed_origins: Vec::new(),
        },
        session,
        listen,
        serve,
    })
}

/// Run curl if it is installed (the point of the demo); otherwise make the same proxy-style
/// request directly. Prints the response; true for a 200.
async fn call(ingress: SocketAddr, url: &str) -> anyhow::Result<bool> {
    let proxy = format!("http://{ingress}");
    let curl = tokio::task::spawn_blocking({
        let url = url.to_owned();
        move || {
            Command::new("curl")
                .args(["-sS", "-i", "--max-time", "10", "-x", &proxy, &url])
                .output()
        }
    })
    .await?;
    if let Ok(output) = curl {
        std::io::stdout().write_all(&output.stdout)?;
        std::io::stderr().write_all(&output.stderr)?;
        let text = String::from_utf8_lossy(&output.stdout);
        return Ok(output.status.success() && text.starts_with("HTTP/1.1 200"));
    }
    println!("(curl is not installed; making the same request directly)");
    let mut stream = TcpStream::connect(ingress).await?;
    let request = format!("GET {url} HTTP/1.1\r\nHost: bob\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response)).await??;
    let text = String::from_utf8_lossy(&response);
    print!("{text}");
    Ok(text.starts_with("HTTP/1.1 200"))
}

/// The demo's web service: answers every request with who called and what they asked for.
async fn web_service(listener: TcpListener) {
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(async move {
            let _ = serve_visitor(stream).await;
        });
    }
}

async fn serve_visitor(mut stream: TcpStream) -> Result<(), http1::Http1Error> {
    let mut buf = BytesMut::with_capacity(4096);
    while let Some(head_len) = http1::read_head(&mut stream, &mut buf, 16 * 1024).await? {
        let (text, length, close) = {
            let mut headers = [httparse::EMPTY_HEADER; http1::MAX_HEADERS];
            let mut req = httparse::Request::new(&mut headers);
            req.parse(&buf[..head_len])?;
            let from = http1::single_header(req.headers, "httpws-from")?
                .map(String::from_utf8_lossy)
                .unwrap_or_else(|| "an unknown caller".into());
            let text = format!(
                "Hello from the web service behind endpoint bob.\n\
                 You are {from} (the proxy's Httpws-From header).\n\
                 You asked for {} {}.\n",
                req.method.unwrap_or("?"),
                req.path.unwrap_or("?"),
            );
            let length = http1::request_body_length(req.headers)?;
            (
                text,
                length,
                httpws::proto::http1::hop::wants_close(req.version.unwrap_or(1), req.headers),
            )
        };
        let _ = buf.split_to(head_len);
        http1::read_body(&mut stream, &mut buf, length, 1024 * 1024).await?;
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n{text}",
            text.len()
        );
        stream.write_all(response.as_bytes()).await?;
        if close {
            break;
        }
    }
    Ok(())
}
