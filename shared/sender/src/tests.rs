//! The sender against a real axum receiver on 127.0.0.1.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;

use super::*;

struct Receiver {
    base: String,
    port: u16,
    hits: Arc<AtomicUsize>,
    last_headers: Arc<std::sync::Mutex<Option<HeaderMap>>>,
}

async fn receiver() -> Receiver {
    let hits = Arc::new(AtomicUsize::new(0));
    let last_headers = Arc::new(std::sync::Mutex::new(None));
    let (h, lh) = (hits.clone(), last_headers.clone());
    let app = Router::new()
        .route(
            "/ok",
            post(move |headers: HeaderMap, body: String| async move {
                h.fetch_add(1, Ordering::SeqCst);
                *lh.lock().unwrap() = Some(headers);
                assert!(body.starts_with('{'));
                "thanks"
            }),
        )
        .route(
            "/fail",
            post(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .route(
            "/redirect",
            post(|| async { (StatusCode::FOUND, [("location", "/ok")], "") }),
        )
        .route("/big", post(|| async { "é".repeat(50_000) }))
        .route(
            "/busy",
            post(|| async {
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", "30")],
                    "slow down",
                )
                    .into_response()
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Receiver {
        base: format!("http://127.0.0.1:{port}"),
        port,
        hits,
        last_headers,
    }
}

fn req<'a>(url: &'a str, headers: &'a [(String, String)]) -> OutboundRequest<'a> {
    OutboundRequest {
        url,
        headers,
        body: r#"{"id":"evt_1"}"#,
    }
}

#[tokio::test]
async fn accepted_with_headers_and_snippet() {
    let r = receiver().await;
    let sender = ReqwestSender::new(true);
    let headers = vec![("X-Api-Key".to_string(), "abc123".to_string())];
    let out = sender.send(&req(&format!("{}/ok", r.base), &headers)).await;
    assert!(out.accepted(), "{out:?}");
    assert_eq!(out.status, Some(200));
    assert_eq!(out.error, None);
    assert_eq!(out.response_snippet.as_deref(), Some("thanks"));
    let got = r.last_headers.lock().unwrap().clone().unwrap();
    assert_eq!(got["content-type"], "application/json");
    assert_eq!(got["x-api-key"], "abc123");
    assert!(got["user-agent"].to_str().unwrap().starts_with("Hookline/"));
}

#[tokio::test]
async fn non_2xx_redirects_and_refusals_are_not_accepted() {
    let r = receiver().await;
    let sender = ReqwestSender::new(true);
    let out = sender.send(&req(&format!("{}/fail", r.base), &[])).await;
    assert_eq!((out.accepted(), out.status), (false, Some(500)));
    assert!(out.error.unwrap().contains("500"));
    assert_eq!(out.response_snippet.as_deref(), Some("boom"));

    let out = sender
        .send(&req(&format!("{}/redirect", r.base), &[]))
        .await;
    assert_eq!((out.accepted(), out.status), (false, Some(302)));
    assert!(out.error.unwrap().contains("not followed"));
    assert_eq!(
        r.hits.load(Ordering::SeqCst),
        0,
        "the redirect was followed"
    );

    // a closed port: bind, learn the port, close it
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = sender
        .send(&req(&format!("http://127.0.0.1:{closed}/"), &[]))
        .await;
    assert_eq!((out.accepted(), out.status), (false, None));
    assert!(out.error.unwrap().contains("connect"));
}

#[tokio::test]
async fn keeps_1_kib_of_the_body_and_honours_retry_after() {
    let r = receiver().await;
    let sender = ReqwestSender::new(true);
    let out = sender.send(&req(&format!("{}/big", r.base), &[])).await;
    let snippet = out.response_snippet.unwrap();
    assert!(
        snippet.len() <= SNIPPET && snippet.len() >= SNIPPET - 1,
        "{}",
        snippet.len()
    );
    assert!(snippet.chars().all(|c| c == 'é'));

    let out = sender.send(&req(&format!("{}/busy", r.base), &[])).await;
    assert_eq!(out.status, Some(429));
    assert_eq!(out.retry_after, Some(Duration::from_secs(30)));
}

#[tokio::test]
async fn private_targets_are_refused_at_the_attempt() {
    let r = receiver().await;
    let rebinding: Lookup = Arc::new(|host: String| {
        Box::pin(async move {
            match host.as_str() {
                "rebind.test" => Ok(vec!["127.0.0.1".parse().unwrap()]),
                "mixed.test" => Ok(vec![
                    "93.184.216.34".parse().unwrap(),
                    "10.0.0.1".parse().unwrap(),
                ]),
                _ => Err(std::io::Error::other("no such host")),
            }
        })
    });
    let sender = ReqwestSender::with_lookup(false, rebinding);
    for url in [
        format!("{}/ok", r.base),
        format!("http://[::ffff:127.0.0.1]:{}/ok", r.port),
        format!("http://rebind.test:{}/ok", r.port),
    ] {
        let out = sender.send(&req(&url, &[])).await;
        assert!(!out.accepted(), "{url}");
        assert!(
            out.error.as_deref().unwrap_or("").contains("blocked"),
            "{url}: {out:?}"
        );
    }
    // `localhost`, resolved by the machine's real resolver, is refused after DNS too
    let real = ReqwestSender::new(false);
    let out = real
        .send(&req(&format!("http://localhost:{}/ok", r.port), &[]))
        .await;
    assert!(
        out.error.as_deref().unwrap_or("").contains("blocked"),
        "{out:?}"
    );
    assert_eq!(
        r.hits.load(Ordering::SeqCst),
        0,
        "a private target was reached"
    );

    let check = |u: &str| url::Url::parse(u).unwrap();
    assert!(
        sender
            .check_target(&check("http://rebind.test/"))
            .await
            .is_err()
    );
    assert!(
        sender
            .check_target(&check("http://mixed.test/"))
            .await
            .is_err()
    );
    assert!(
        sender
            .check_target(&check("http://169.254.169.254/"))
            .await
            .is_err()
    );
    assert!(
        sender
            .check_target(&check("http://unknown.test/"))
            .await
            .is_ok()
    );
    assert!(
        real.check_target(&check("http://localhost/"))
            .await
            .is_err()
    );
}

/// DNS rebinding for real: the name is public when the scenario is validated, private when
/// the attempt connects. The check passes, the attempt is refused, the receiver never hit.
#[tokio::test]
async fn a_name_that_turns_private_after_validation_is_refused_at_the_attempt() {
    let r = receiver().await;
    let asked = Arc::new(AtomicUsize::new(0));
    let lookup: Lookup = {
        let asked = asked.clone();
        Arc::new(move |_host: String| {
            let n = asked.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                Ok(vec![if n == 0 {
                    "93.184.216.34".parse().unwrap()
                } else {
                    "127.0.0.1".parse().unwrap()
                }])
            })
        })
    };
    let sender = ReqwestSender::with_lookup(false, lookup);
    let url = format!("http://rebind.test:{}/ok", r.port);
    assert!(
        sender
            .check_target(&url::Url::parse(&url).unwrap())
            .await
            .is_ok(),
        "public at validation"
    );
    let out = sender.send(&req(&url, &[])).await;
    assert!(!out.accepted());
    assert!(
        out.error.as_deref().unwrap_or("").contains("127.0.0.1"),
        "{out:?}"
    );
    assert_eq!(
        asked.load(Ordering::SeqCst),
        2,
        "the attempt resolved the name again"
    );
    assert_eq!(
        r.hits.load(Ordering::SeqCst),
        0,
        "the private address was reached"
    );
}

/// The three limits against real, misbehaving servers on loopback: a server whose accept
/// queue is full (the handshake never completes: connect timeout 5 s), one that never answers
/// (whole request 15 s), and one that streams a body for ever (64 KiB read, then done).
#[tokio::test(flavor = "multi_thread")]
async fn connect_timeout_total_timeout_and_the_read_cap_hold() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sender = ReqwestSender::new(true);

    // never answers: accepts, reads the request, stays silent
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut s, _)) = silent.accept().await {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            held.push(s);
        }
    });
    // endless body: 200 and chunks for ever
    let endless = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endless_port = endless.local_addr().unwrap().port();
    let streamed = Arc::new(AtomicUsize::new(0));
    let streamed2 = streamed.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = endless.accept().await {
            let streamed = streamed2.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let head = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n";
                if s.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = format!("{:x}\r\n{}\r\n", 16_384, "z".repeat(16_384));
                for _ in 0..100_000 {
                    if s.write_all(chunk.as_bytes()).await.is_err() {
                        return;
                    }
                    streamed.fetch_add(16_384, Ordering::SeqCst);
                }
            });
        }
    });
    // a full accept queue: backlog 1, never accepted, filled by two idle connections
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let full = socket.listen(1).unwrap();
    let full_port = full.local_addr().unwrap().port();
    let mut fillers = Vec::new();
    for _ in 0..3 {
        if let Ok(Ok(s)) = tokio::time::timeout(
            Duration::from_millis(300),
            tokio::net::TcpStream::connect(("127.0.0.1", full_port)),
        )
        .await
        {
            fillers.push(s);
        }
    }

    let timed = |url: String| {
        let sender = &sender;
        async move {
            let started = Instant::now();
            let out = sender.send(&req(&url, &[])).await;
            (out, started.elapsed())
        }
    };
    let ((silent_out, silent_took), (full_out, full_took), (endless_out, endless_took)) = tokio::join!(
        timed(format!("http://127.0.0.1:{silent_port}/")),
        timed(format!("http://127.0.0.1:{full_port}/")),
        timed(format!("http://127.0.0.1:{endless_port}/")),
    );
    assert!(!silent_out.accepted());
    assert!(
        silent_out
            .error
            .as_deref()
            .unwrap_or("")
            .contains("timed out"),
        "{silent_out:?}"
    );
    assert!(
        silent_took >= REQUEST_TIMEOUT && silent_took < REQUEST_TIMEOUT + Duration::from_secs(2),
        "whole request: {silent_took:?}"
    );
    assert!(!full_out.accepted());
    assert!(
        full_out
            .error
            .as_deref()
            .unwrap_or("")
            .contains("timed out"),
        "{full_out:?}"
    );
    assert!(
        full_took >= CONNECT_TIMEOUT && full_took < CONNECT_TIMEOUT + Duration::from_secs(2),
        "connect: {full_took:?}"
    );
    assert!(endless_out.accepted(), "{endless_out:?}");
    assert!(
        endless_took < Duration::from_secs(5),
        "read cap: {endless_took:?}"
    );
    assert_eq!(
        endless_out.response_snippet.as_deref().map(str::len),
        Some(SNIPPET)
    );
    drop(fillers);
}
