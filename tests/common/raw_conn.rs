//! A raw keep-alive HTTP/1.1 client connection, for tests that need byte-level control of
//! what they send and read responses as they come.

use std::io::{self, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::http1::{RawResponse, read_response};

/// A raw keep-alive client connection for tests that need byte-level control.
pub struct RawConn {
    pub reader: BufReader<TcpStream>,
    pub stream: TcpStream,
}

impl RawConn {
    pub fn connect(addr: SocketAddr, timeout: Duration) -> RawConn {
        let stream = TcpStream::connect_timeout(&addr, timeout).expect("tcp connect");
        stream
            .set_read_timeout(Some(timeout))
            .expect("read timeout");
        stream
            .set_write_timeout(Some(timeout))
            .expect("write timeout");
        stream.set_nodelay(true).expect("nodelay");
        let reader = BufReader::new(stream.try_clone().expect("clone"));
        RawConn { reader, stream }
    }

    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    #[track_caller]
    pub fn response(&mut self, method: &str) -> RawResponse {
        read_response(&mut self.reader, method)
            .unwrap_or_else(|e| panic!("reading a response: {e}"))
    }

    pub fn try_response(&mut self, method: &str) -> io::Result<RawResponse> {
        read_response(&mut self.reader, method)
    }

    /// Whether the peer closes the connection (reads end of stream, or a reset) within the
    /// read timeout, with no further bytes first. Returns `Err(bytes)` if data came instead.
    pub fn closed_by_peer(&mut self) -> Result<bool, Vec<u8>> {
        let mut buf = [0u8; 256];
        match self.reader.read(&mut buf) {
            Ok(0) => Ok(true),
            Ok(n) => Err(buf[..n].to_vec()),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(true),
            Err(_) => Ok(false),
        }
    }
}
