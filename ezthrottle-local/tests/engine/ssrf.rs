//! The SSRF guard: a guarded engine reaches no loopback, private, link-local or other special
//! address unless the allow-list names it, checked after DNS resolution.
//!
//! Testing rule: no packet to an address off loopback. The non-loopback cases are answers
//! of a scripted resolver ([`ScriptedDns`], IPv4 only) that the guard must refuse before any
//! connection; every guarded engine here also pins its source address to `127.0.0.1`
//! ([`EngineBuilder::local_address`]), so should the guard let one through, the kernel
//! refuses the connection (`EINVAL`: no route from loopback off loopback) before a packet
//! leaves. The allowed cases use the loopback alias `127.0.0.2`.
//!
//! Open mode refusing a presented unknown key is in `auth.rs`
//! (`open_mode_accepts_no_key_and_refuses_an_unknown_one`).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use ezthrottle_local::{Engine, EngineBuilder, StartError};
use ezthrottle_test_support::{Answer, TestServer};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use serde_json::{Value, json};

use crate::support::*;

const ALIAS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// A resolver answering from a script: the n-th lookup of a name gets its n-th answer (the
/// last one once the script runs out). It records every lookup.
#[derive(Clone, Default)]
struct ScriptedDns {
    script: Arc<HashMap<String, Vec<Vec<Ipv4Addr>>>>,
    lookups: Arc<Mutex<Vec<String>>>,
}

impl ScriptedDns {
    /// IPv4 only: a connection from `127.0.0.1` to an IPv4 address off loopback cannot be
    /// made, one to an IPv6 address could.
    fn new<'a>(script: impl IntoIterator<Item = (&'a str, Vec<Vec<Ipv4Addr>>)>) -> Self {
        let script = script.into_iter().map(|(name, answers)| (name.to_owned(), answers)).collect();
        Self { script: Arc::new(script), lookups: Arc::default() }
    }

    fn lookups(&self, name: &str) -> usize {
        self.lookups.lock().unwrap().iter().filter(|looked_up| *looked_up == name).count()
    }
}

impl Resolve for ScriptedDns {
    fn resolve(&self, name: Name) -> Resolving {
        let name = name.as_str().to_owned();
        let seen = {
            let mut lookups = self.lookups.lock().unwrap();
            let seen = lookups.iter().filter(|looked_up| **looked_up == name).count();
            lookups.push(name.clone());
            seen
        };
        let answer = self.script.get(&name).and_then(|answers| answers.get(seen).or(answers.last())).cloned();
        Box::pin(async move {
            match answer {
                Some(ips) => Ok(Box::new(ips.into_iter().map(|ip| SocketAddr::new(IpAddr::V4(ip), 0))) as Addrs),
                None => Err(format!("{name}: not a name of this test").into()),
            }
        })
    }
}

/// A fast engine with the guard forced on, resolving through `dns`, its connections pinned
/// to `127.0.0.1`.
fn guarded(dns: &ScriptedDns) -> EngineBuilder {
    fast_engine()
        .guard_private_addresses()
        .local_address(IpAddr::V4(Ipv4Addr::LOCALHOST))
        .resolver(Arc::new(dns.clone()))
}

/// A recording target on the loopback alias.
async fn alias_target() -> Server {
    Server::start_on(SocketAddr::new(IpAddr::V4(ALIAS), 0)).await
}

fn port_of(server: &Server) -> u16 {
    server.url("").rsplit(':').next().unwrap().parse().unwrap()
}

fn errors_of(job: &Value) -> String {
    job["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|attempt| attempt["error"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_resolving_to_a_special_address_fails_with_the_rule() {
    let ip = |a, b, c, d| Ipv4Addr::new(a, b, c, d);
    let classes = [
        ("ten.test", ip(10, 0, 0, 1), "private"),
        ("172.test", ip(172, 16, 0, 1), "private"),
        ("home.test", ip(192, 168, 1, 1), "private"),
        ("metadata.test", ip(169, 254, 169, 254), "link-local"),
        ("cgnat.test", ip(100, 64, 0, 1), "shared address space"),
        ("loopback.test", ip(127, 0, 0, 1), "loopback"),
        ("zero.test", ip(0, 0, 0, 0), "unspecified"),
        ("docs.test", ip(192, 0, 2, 1), "documentation"),
        ("multicast.test", ip(224, 0, 0, 1), "multicast"),
    ];
    let dns = ScriptedDns::new(classes.iter().map(|(name, ip, _)| (*name, vec![vec![*ip]])));
    let (engine, api) = start(guarded(&dns)).await;
    let retries = json!({"retry_policy": {"max_retries": 0}});
    for (name, ip, class) in classes {
        // A name is accepted at submission: it is checked where it is resolved, at connect.
        let id = api.submit_ok(&job(&format!("http://{name}:8080/secret"), retries.clone())).await;
        let done = api.wait_terminal(&id).await;
        assert_eq!(done["status"], "failed", "{name}: {done:#}");
        let errors = errors_of(&done);
        let rule = format!("{ip} (an address of {name}) is {class}");
        assert!(errors.contains(&rule) && errors.contains("SSRF guard"), "{name}: {errors}");
        assert!(dns.lookups(name) >= 1, "{name} was not resolved by the engine's resolver");
    }
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_rebinding_to_the_metadata_address_fails_at_connect_time() {
    let (first, second) = (alias_target().await, alias_target().await);
    let metadata = Ipv4Addr::new(169, 254, 169, 254);
    let dns = ScriptedDns::new([("rebind.test", vec![vec![ALIAS], vec![metadata]])]);
    let allowed = ["rebind.test", "127.0.0.2"];
    let (engine, api) = start(guarded(&dns).allowed_hosts(allowed)).await;
    let retries = json!({"retry_policy": {"max_retries": 0}});
    let id = api.submit_ok(&job(&format!("http://rebind.test:{}/ok/first", port_of(&first)), retries.clone())).await;
    assert_eq!(api.wait_terminal(&id).await["status"], "success", "the first answer, {ALIAS}, is allowed");
    assert_eq!(first.wait_hits("/ok/first", 1).await.len(), 1);
    // Another port: a new connection, so a new lookup, which now answers the metadata address.
    let id = api.submit_ok(&job(&format!("http://rebind.test:{}/ok/second", port_of(&second)), retries)).await;
    let done = api.wait_terminal(&id).await;
    assert_eq!(done["status"], "failed", "{done:#}");
    let errors = errors_of(&done);
    assert!(errors.contains("169.254.169.254 (an address of rebind.test) is link-local"), "{errors}");
    assert_eq!(dns.lookups("rebind.test"), 2);
    assert!(second.requests().is_empty());
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_allowed_answers_of_a_mixed_name_are_used() {
    let target = alias_target().await;
    let dns = ScriptedDns::new([("mixed.test", vec![vec![Ipv4Addr::new(169, 254, 169, 254), ALIAS]])]);
    let (engine, api) = start(guarded(&dns).allowed_hosts(["mixed.test", "127.0.0.2"])).await;
    let id = api.submit_ok(&job(&format!("http://mixed.test:{}/ok/mixed", port_of(&target)), json!({}))).await;
    let done = api.wait_terminal(&id).await;
    assert_eq!(done["status"], "success", "{done:#}");
    assert_eq!(target.wait_hits("/ok/mixed", 1).await.len(), 1);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_literals_are_refused_at_submission_naming_the_field() {
    let dns = ScriptedDns::default();
    let (engine, api) = start(guarded(&dns)).await;
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://127.0.0.1:8080/",
        "http://[::1]:8080/",
        "http://[::ffff:169.254.169.254]/",
        "http://[fd00::1]/",
        "http://[fe80::1]/",
        "http://2130706433/",
        "http://0x7f.0.0.1/",
        "http://0.0.0.0:80/",
        "http://100.64.0.1/",
    ] {
        let (status, answer) = api.submit(&job(url, json!({}))).await;
        assert_eq!(status, 403, "{url}: {answer}");
        let message = answer["message"].as_str().or(answer["error"].as_str()).unwrap_or_default().to_owned();
        assert!(message.starts_with("url: ") && message.contains("SSRF guard"), "{url}: {answer}");
    }
    let public = "http://93.184.216.34/";
    let hooks = json!({"webhooks": [{"url": "http://192.168.1.1/hook"}]});
    let (status, answer) = api.submit(&job(public, hooks)).await;
    assert_eq!(status, 403, "{answer}");
    assert!(answer.to_string().contains("webhooks[0].url: 192.168.1.1 is private"), "{answer}");
    let nested = json!({"fallback_job": {"url": "http://169.254.169.254/", "method": "GET", "trigger": {}}});
    let (status, answer) = api.submit(&job(public, nested)).await;
    assert_eq!(status, 403, "{answer}");
    assert!(answer.to_string().contains("fallback_job.url: 169.254.169.254 is link-local"), "{answer}");
    // The proxy envelope goes through the same check.
    let envelope = json!({"scope": "customer", "metric_name": "", "target_url": "https://ezthrottle.fly.dev/api/v1/jobs",
        "method": "POST", "headers": {}, "body": job("http://169.254.169.254/", json!({})).to_string()});
    let (_, answer) = api.proxy(&envelope).await;
    assert_eq!(answer["forwarded_response"]["status_code"], 403, "{answer}");
    assert!(answer.to_string().contains("SSRF guard"), "{answer}");
    assert!(dns.lookups.lock().unwrap().is_empty());
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_list_entries_match_host_and_port() {
    let target = alias_target().await;
    let port = port_of(&target);
    let dns = ScriptedDns::new([("alias.test", vec![vec![ALIAS]])]);
    let allowed = [format!("127.0.0.2:{port}"), format!("alias.test:{port}")];
    let (engine, api) = start(guarded(&dns).allowed_hosts(allowed)).await;
    for url in [format!("http://127.0.0.2:{port}/ok/literal"), format!("http://alias.test:{port}/ok/name")] {
        let id = api.submit_ok(&job(&url, json!({}))).await;
        assert_eq!(api.wait_terminal(&id).await["status"], "success", "{url}");
    }
    assert_eq!(target.wait_hits("/ok/", 2).await.len(), 2);
    let other = port.wrapping_add(1).max(1);
    for url in
        [format!("http://127.0.0.2:{other}/"), format!("http://alias.test:{other}/"), "http://127.0.0.2/".to_owned()]
    {
        let (status, answer) = api.submit(&job(&url, json!({}))).await;
        assert_eq!(status, 403, "{url}: {answer}");
        assert!(answer.to_string().contains("is not in the engine's allow-list"), "{url}: {answer}");
    }
    // Naming a host lets it be requested; the address it resolves to must be named too.
    let dns_only = ScriptedDns::new([("unnamed.test", vec![vec![ALIAS]])]);
    let (engine2, api2) = start(guarded(&dns_only).allowed_hosts([format!("unnamed.test:{port}")])).await;
    let retries = json!({"retry_policy": {"max_retries": 0}});
    let id = api2.submit_ok(&job(&format!("http://unnamed.test:{port}/ok/unnamed"), retries)).await;
    let done = api2.wait_terminal(&id).await;
    assert_eq!(done["status"], "failed", "{done:#}");
    assert!(errors_of(&done).contains("127.0.0.2 (an address of unnamed.test) is loopback"), "{done:#}");
    assert!(target.hits("/ok/unnamed").is_empty());
    engine2.shutdown().await;
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_resolving_to_a_private_address_is_not_delivered() {
    let target = alias_target().await;
    let port = port_of(&target);
    let dns = ScriptedDns::new([("hooks.test", vec![vec![Ipv4Addr::new(10, 0, 0, 1)]])]);
    let allowed = [format!("127.0.0.2:{port}"), "hooks.test".to_owned()];
    let (engine, api) = start(guarded(&dns).allowed_hosts(allowed)).await;
    let webhooks = json!([{"url": "http://hooks.test/hook"}, {"url": format!("http://127.0.0.2:{port}/hook")}]);
    let id = api.submit_ok(&job(&format!("http://127.0.0.2:{port}/ok/job"), json!({"webhooks": webhooks}))).await;
    let settled = |job: &Value| (0..2).all(|i| job["webhooks"][i]["outcome"].as_str().is_some_and(|o| o != "pending"));
    let done = api.wait_job(&id, settled).await;
    assert_eq!(done["status"], "success", "{done:#}");
    assert_eq!(done["webhooks"][0]["outcome"], "failed", "{done:#}");
    let error = done["webhooks"][0]["attempts"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("10.0.0.1 (an address of hooks.test) is private"), "{done:#}");
    assert_eq!(done["webhooks"][1]["outcome"], "delivered", "{done:#}");
    assert!(dns.lookups("hooks.test") >= 1);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_hop_to_a_private_literal_is_not_followed() {
    let redirecting = TestServer::start_on(SocketAddr::new(IpAddr::V4(ALIAS), 0), |hit| {
        let to = hit.path_only().trim_start_matches("/to/").to_owned();
        Answer::status(307).header("location", format!("http://{to}/latest/meta-data/"))
    })
    .await;
    let port = redirecting.addr.port();
    let dns = ScriptedDns::default();
    let (engine, api) = start(guarded(&dns).allowed_hosts([format!("127.0.0.2:{port}")])).await;
    for to in ["169.254.169.254", "10.0.0.1", "[::ffff:a9fe:a9fe]"] {
        let id = api.submit_ok(&job(&format!("http://127.0.0.2:{port}/to/{to}"), json!({}))).await;
        let done = api.wait_terminal(&id).await;
        assert_eq!(done["response"]["status_code"], 307, "{to}: the 3xx is the answer: {done:#}");
        assert_eq!(done["status"], "failed", "{to}: {done:#}");
    }
    assert_eq!(redirecting.requests().len(), 3);
    assert!(dns.lookups.lock().unwrap().is_empty());
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_bound_beyond_loopback_is_guarded_without_being_told() {
    // Bound on every interface (nothing is sent off loopback: the target is refused).
    let target = Server::start().await;
    let engine = fast_engine().bind("0.0.0.0:0".parse().unwrap()).start().await.expect("engine starts");
    let api = Api::new(&format!("http://127.0.0.1:{}", engine.addr().port()), KEY);
    let (status, answer) = api.submit(&job(&target.url("/ok"), json!({}))).await;
    assert_eq!(status, 403, "{answer}");
    assert!(answer.to_string().contains("127.0.0.1 is loopback"), "{answer}");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_beyond_loopback_needs_the_explicit_flag() {
    let everywhere: SocketAddr = "0.0.0.0:0".parse().unwrap();
    match Engine::builder().open().bind(everywhere).start().await {
        Err(err @ StartError::OpenOnNetwork { .. }) => {
            assert!(err.to_string().contains("--open-on-network"), "{err}");
        }
        other => panic!("open on {everywhere} started: {other:?}"),
    }
    let engine = Engine::builder().open().open_on_network().bind(everywhere).start().await.expect("with the flag");
    engine.shutdown().await;
    assert!(Engine::builder().open().start().await.is_ok(), "open on loopback needs no flag");

    let output = tokio::task::spawn_blocking(|| {
        std::process::Command::new(env!("CARGO_BIN_EXE_ezthrottle-local"))
            .args(["--bind", "0.0.0.0:0", "--open"])
            .stdin(std::process::Stdio::null())
            .output()
    });
    let output = tokio::time::timeout(DEADLINE, output).await.expect("exits in time").unwrap().unwrap();
    assert_eq!(output.status.code(), Some(2), "a usage error: {output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("--open-on-network"), "{output:?}");
}
