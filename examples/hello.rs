//! A first exchange through a running proxy: registers `alice` and `bob`, sends one request
//! from alice to bob, has bob answer it, and prints what each side saw.
//!
//! ```sh
//! cargo run --release                                  # terminal 1: the proxy
//! cargo run --example hello -- ws://127.0.0.1:8080     # terminal 2
//! ```

use std::net::TcpStream;

use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

type Ws = WebSocket<MaybeTlsStream<TcpStream>>;

fn register(proxy: &str, name: &str) -> Result<Ws, Box<dyn std::error::Error>> {
    let (mut ws, _) = tungstenite::connect(format!("{proxy}/{name}"))?;
    println!("{name} <- {}", recv(&mut ws)?);
    Ok(ws)
}

fn recv(ws: &mut Ws) -> Result<String, Box<dyn std::error::Error>> {
    loop {
        match ws.read()? {
            Message::Text(t) => return Ok(t.to_string()),
            Message::Binary(b) => return Ok(String::from_utf8_lossy(&b).into_owned()),
            _ => continue,
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proxy = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:8080".into());
    let mut alice = register(&proxy, "alice")?;
    let mut bob = register(&proxy, "bob")?;

    let request = "GET /hello HTTP/1.1\r\nHost: bob\r\nCSeq: 1\r\n\r\n";
    println!("alice -> {request:?}");
    alice.send(Message::text(request))?;

    let seen = recv(&mut bob)?;
    println!("bob <- {seen:?}");
    let cseq = seen
        .lines()
        .find_map(|l| l.strip_prefix("CSeq: "))
        .ok_or("the relayed request has no CSeq")?;
    let response = format!("HTTP/1.1 200 OK\r\nCSeq: {cseq}\r\nContent-Length: 6\r\n\r\nhello!");
    println!("bob -> {response:?}");
    bob.send(Message::text(response))?;

    println!("alice <- {:?}", recv(&mut alice)?);
    Ok(())
}
