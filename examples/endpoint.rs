//! The client library: two endpoints in one program. `bob` serves requests with an async
//! handler; `alice` calls bob with an ordinary `http::Request` and prints the response.
//!
//! ```sh
//! cargo run --release                                      # terminal 1: the proxy
//! cargo run --example endpoint -- ws://127.0.0.1:8080      # terminal 2
//! ```

use bytes::Bytes;
use httpws::endpoint::{Endpoint, httpws_error};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proxy = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:8080".into());

    // bob answers every request with who called and what they sent.
    let bob = Endpoint::builder(&proxy).name("bob").connect().await?;
    let server = bob.clone();
    tokio::spawn(async move {
        server
            .serve(|req: http::Request<Bytes>| async move {
                let from = req
                    .headers()
                    .get("httpws-from")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("?")
                    .to_owned();
                let text = format!(
                    "bob got {} {} from {from}: {:?}\n",
                    req.method(),
                    req.uri(),
                    String::from_utf8_lossy(req.body())
                );
                http::Response::new(Bytes::from(text))
            })
            .await
    });

    let alice = Endpoint::builder(&proxy).name("alice").connect().await?;
    let request = http::Request::post("http://bob/offer")
        .header("content-type", "application/sdp")
        .body(Bytes::from_static(b"v=0 ..."))?;
    let response = alice.request(request).await?;
    println!("alice <- {} {:?}", response.status(), response.body());

    // Every request gets exactly one answer: here the proxy's 404.
    let missing = alice
        .request(http::Request::get("http://carol/").body(Bytes::new())?)
        .await?;
    println!(
        "alice <- {} (Httpws-Error: {})",
        missing.status(),
        httpws_error(&missing).unwrap_or("none")
    );

    alice.close().await;
    bob.close().await;
    Ok(())
}
