//! Stream message target (protocol 2, docs/protocol.md §12): `proto::stream::parse` on any
//! bytes. Properties: a message is a stream message exactly when it starts with `~`; what
//! parses is within the tag limit, its payload starts right after the tag line, data is the
//! only verb with a payload, and writing the parsed tag back gives a tag line that parses to
//! the same verb, direction and CSeq, of exactly `tag_len` bytes — so the proxy's rewrite (a
//! new tag, the payload as it came) keeps every message meaning what it meant.

use bytes::BytesMut;
use httpws::proto::stream::{self, MAX_TAG_BYTES, Verb};

pub fn stream(data: &[u8]) {
    let parsed = stream::parse_if_stream(data);
    assert_eq!(parsed.is_some(), stream::is_stream(data));
    let Some(Ok(msg)) = parsed else {
        return;
    };
    assert!(msg.payload_at <= MAX_TAG_BYTES && msg.payload_at <= data.len());
    assert_eq!(data[msg.payload_at - 1], b'\n');
    if msg.verb != Verb::Data {
        assert_eq!(msg.payload_at, data.len(), "only data carries a payload");
    }
    for cseq in [msg.cseq, 0, 1, u64::MAX] {
        for dir in [msg.dir, msg.dir.flipped()] {
            let mut out = BytesMut::new();
            stream::write_tag(&mut out, msg.verb, dir, cseq);
            assert_eq!(out.len(), stream::tag_len(msg.verb, cseq));
            out.extend_from_slice(&data[msg.payload_at..]);
            let back = stream::parse(&out).expect("a written tag parses");
            assert_eq!((back.verb, back.dir, back.cseq), (msg.verb, dir, cseq));
            assert_eq!(&out[back.payload_at..], &data[msg.payload_at..]);
        }
    }
}
