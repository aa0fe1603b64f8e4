//! Registration and relay through the real proxy binary, on both io drivers.

mod common;

use common::driver::Driver;
use common::proxy::Proxy;
use common::ws::{connect, connect_status};

fn relays_a_request_and_its_response(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let mut alice = connect(&proxy, "/alice");
    let mut bob = connect(&proxy, "/bob");
    assert_eq!(
        (alice.address.as_str(), bob.address.as_str()),
        ("alice", "bob")
    );

    alice.send("GET /x HTTP/1.1\r\nHost: bob\r\nCSeq: 41\r\nHttpws-From: mallory\r\n\r\n");
    let seen = bob.answer("hello");
    assert_eq!(seen.start, "GET /x HTTP/1.1");
    assert_eq!(
        seen.all("httpws-from"),
        vec!["alice"],
        "forged Httpws-From replaced"
    );

    let response = alice.recv_http();
    assert_eq!(response.status(), 200);
    assert_eq!(response.cseq(), 41, "the caller's CSeq is restored");
    assert_eq!(response.body, "hello");
}

fn refuses_a_held_name_and_the_holder_keeps_working(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let mut alice = connect(&proxy, "/alice");
    let mut bob = connect(&proxy, "/bob");
    assert_eq!(connect_status(&proxy, "/bob").err(), Some(409));
    alice.request("bob", 1, "/");
    bob.answer("still mine");
    assert_eq!(alice.recv_http().body, "still mine");
}

on_both_drivers!(
    relays_a_request_and_its_response,
    refuses_a_held_name_and_the_holder_keeps_working
);
