//! Connection reuse against the real binary: keep-alive, pipelining, HTTP/1.0 and
//! `Expect: 100-continue`. Each test checks every answer in order and whether the connection
//! stays open.

use std::time::Duration;

use serde_json::{Value, json};

use crate::attack::{CLOSE_WAIT, answer_then_close, assert_error, assert_served, head_of, start};
use crate::support::{
    Client, EXAMPLE, Server, db, fresh_database, now, request, row, set_header, set_request_line,
    signature, signed_request, unique_id,
};

#[test]
fn keep_alive_answers_three_requests_in_order() {
    let url = fresh_database();
    let server = Server::start(&url, &[]);
    let id = unique_id("keep");
    let mut client = Client::connect(server.addr());
    let requests = [
        signed_request(&id, now(), EXAMPLE),
        request("GET", "/healthz", &[], b""),
        signed_request(&id, now(), EXAMPLE),
    ];
    let expected = [
        json!({"status": "accepted", "id": id}),
        json!({"status": "ok"}),
        json!({"status": "duplicate", "id": id}),
    ];
    for (bytes, body) in requests.iter().zip(expected) {
        client.send(bytes).unwrap();
        let answer = client.response().unwrap();
        assert_eq!((answer.status, answer.json()), (200, body));
        assert_eq!(answer.header("connection"), Some("keep-alive"));
    }
    assert!(!client.closed_within(Duration::from_millis(300)));
    assert!(row(&mut db(&url), &id).is_some());
}

#[test]
fn pipelined_requests_with_mixed_outcomes_answer_in_order() {
    let url = fresh_database();
    let server = Server::start(&url, &[]);
    let ids: Vec<String> = (0..5).map(|_| unique_id("pipe")).collect();
    let other = signature("someone_else", now(), EXAMPLE.as_bytes());
    let bad_currency = EXAMPLE.replace("usd", "ZZZ");
    let mut bytes = signed_request(&ids[0], now(), EXAMPLE);
    bytes.extend(set_header(
        &signed_request(&ids[1], now(), EXAMPLE),
        "webhook-signature",
        Some(&other),
    ));
    bytes.extend(signed_request(&ids[2], now(), &bad_currency));
    bytes.extend(set_request_line(
        &signed_request(&ids[3], now(), EXAMPLE),
        "POST /nope HTTP/1.1",
    ));
    bytes.extend(signed_request(&ids[4], now(), EXAMPLE));
    let mut client = Client::connect(server.addr());
    client.send(&bytes).unwrap();
    let answers = client.responses(5);
    let summary: Vec<(u16, Value)> = answers
        .iter()
        .map(|a| (a.status, a.json()["error"].clone()))
        .collect();
    let none = Value::Null;
    assert_eq!(
        summary,
        vec![
            (200, none.clone()),
            (401, json!("invalid_signature")),
            (422, json!("validation_failed")),
            (404, json!("not_found")),
            (200, none),
        ]
    );
    assert_eq!(
        answers[0].json(),
        json!({"status": "accepted", "id": ids[0]})
    );
    assert_eq!(answers[2].json()["field"], "currency");
    assert_eq!(
        answers[4].json(),
        json!({"status": "accepted", "id": ids[4]})
    );
    assert!(!client.closed_within(Duration::from_millis(300)));
    let mut client = db(&url);
    let stored: Vec<bool> = ids
        .iter()
        .map(|id| row(&mut client, id).is_some())
        .collect();
    assert_eq!(stored, [true, false, false, false, true]);
}

#[test]
fn http10_without_keep_alive_closes_after_the_answer() {
    let server = start(&[]);
    let id = unique_id("http10");
    let post = set_request_line(
        &signed_request(&id, now(), EXAMPLE),
        "POST /webhook HTTP/1.0",
    );
    let health = b"GET /healthz HTTP/1.0\r\n\r\n".to_vec();
    for (bytes, body) in [
        (health, json!({"status": "ok"})),
        (post, json!({"status": "accepted", "id": id})),
    ] {
        let answer = answer_then_close(&server, &bytes);
        assert_eq!((answer.status, answer.json()), (200, body));
        assert_eq!(answer.header("connection"), Some("close"));
    }
}

#[test]
fn http10_with_keep_alive_stays_open() {
    let server = start(&[]);
    let mut client = Client::connect(server.addr());
    for _ in 0..2 {
        client
            .send(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap();
        let answer = client.response().unwrap();
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(answer.header("connection"), Some("keep-alive"));
        assert!(!client.closed_within(Duration::from_millis(300)));
    }
}

#[test]
fn expect_100_continue_answers_100_then_reads_the_body() {
    let url = fresh_database();
    let server = Server::start(&url, &[]);
    let id = unique_id("continue");
    let signed = set_header(
        &signed_request(&id, now(), EXAMPLE),
        "expect",
        Some("100-continue"),
    );
    let mut client = Client::connect(server.addr());
    client.send(head_of(&signed)).unwrap();
    let interim = client.response_within(CLOSE_WAIT).expect("no 100 Continue");
    assert_eq!(interim.status, 100, "{interim:?}");
    client.send(EXAMPLE.as_bytes()).unwrap();
    let answer = client.response().unwrap();
    assert_eq!(
        (answer.status, answer.json()),
        (200, json!({"status": "accepted", "id": id}))
    );
    assert!(row(&mut db(&url), &id).is_some());
    assert!(!client.closed_within(Duration::from_millis(300)));
}

#[test]
fn expect_100_continue_with_wrong_content_type_answers_415_without_100_and_closes() {
    let server = start(&[]);
    let signed = signed_request(&unique_id("continue"), now(), EXAMPLE);
    let signed = set_header(&signed, "content-type", Some("text/plain"));
    let signed = set_header(&signed, "expect", Some("100-continue"));
    // The head alone: a 100 would invite the body, the final answer must come instead.
    let answer = answer_then_close(&server, head_of(&signed));
    assert_error(&answer, 415, "unsupported_media_type", "close");
    assert_served(&server);
}

#[test]
fn unknown_expectation_answers_417_and_closes() {
    let server = start(&[]);
    let mut client = Client::connect(server.addr());
    let raw = set_header(
        &signed_request(&unique_id("expect"), now(), EXAMPLE),
        "expect",
        Some("something-else"),
    );
    client.send(&raw).unwrap();
    let answer = client.response().unwrap();
    assert_eq!(answer.status, 417);
    assert_eq!(answer.json()["error"], "expectation_failed");
    assert!(client.closed_within(Duration::from_secs(2)));
    assert_served(&server);
}
