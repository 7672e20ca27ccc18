//! The uplink against Mosquitto on loopback: with the upstream stopped for a while and then
//! restarted, every message arrives (checked by sequence number), the queue file stays within
//! its bound, and command topics flow back down.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use schema::broker::BrokerHealth;
use test_support::{Client, TIMEOUT, free_port, temp_dir};
use tokio::sync::mpsc;

use crate::Broker;

const MAX_QUEUE_BYTES: u64 = 4096;

/// Mosquitto on `port`, keeping sessions across its restarts in `dir`.
fn mosquitto(port: u16, dir: &Path) -> Option<Child> {
    mosquitto_with(port, dir, "")
}

/// Mosquitto on `port`, with `more` configuration lines (another listener, say).
fn mosquitto_with(port: u16, dir: &Path, more: &str) -> Option<Child> {
    let binary = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"].into_iter().find(|p| Path::new(p).exists())?;
    // Started as root, Mosquitto runs as its own user, which must be able to save sessions.
    let store = dir.join("mosquitto");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::set_permissions(&store, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let config = dir.join("mosquitto.conf");
    std::fs::write(
        &config,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\n\
             log_dest none\nmax_queued_messages 0\n{more}",
            store.display()
        ),
    )
    .unwrap();
    let child =
        Command::new(binary).arg("-c").arg(&config).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + TIMEOUT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "mosquitto did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(child)
}

/// Stops Mosquitto as a service manager would (it saves its sessions).
fn stop(mut child: Child) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_arrives_across_an_upstream_outage_and_commands_come_down() {
    let dir = temp_dir("uplink");
    let port = free_port();
    let Some(upstream) = mosquitto(port, &dir) else {
        assert!(std::env::var_os("BUSGATE_REQUIRE_MOSQUITTO").is_none(), "mosquitto is required");
        eprintln!("mosquitto is not installed: uplink test not run");
        return;
    };

    // Upstream, a watcher with a persistent session counts sequence numbers.
    let mut options = MqttOptions::new("watcher", "127.0.0.1", port);
    options.set_clean_session(false);
    options.set_keep_alive(Duration::from_secs(30));
    let (watcher, mut eventloop) = AsyncClient::new(options, 100);
    watcher.subscribe("fleet/seq/#", QoS::AtLeastOnce).await.unwrap();
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let n: u32 = String::from_utf8_lossy(&p.payload).parse().unwrap();
                    if seen_tx.send(n).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });

    let queue = dir.join("uplink/queue.bin");
    let extra = format!(
        "[broker]\nhealth_interval_s = 1\n[broker.uplink]\naddress = \"127.0.0.1:{port}\"\nclient_id = \"busgate-test\"\n\
         forward = [\"seq/#\"]\nremote_prefix = \"fleet/\"\ncommands = [\"fleet/cmd/#\"]\n\
         queue_path = \"{}\"\nmax_queue_bytes = {MAX_QUEUE_BYTES}\n",
        queue.display()
    );
    let broker = Broker::start(&extra);
    let mut local = Client::connect(broker.address(), "local").await;
    local.subscribe("cmd/#").await;
    local.subscribe(&schema::broker::stats_topic("test")).await;

    let mut received = BTreeSet::new();
    let mut wait_for = async |received: &mut BTreeSet<u32>, count: u32| {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        while received.len() < count as usize {
            let n = tokio::time::timeout_at(deadline, seen.recv())
                .await
                .unwrap_or_else(|_| panic!("only {} of {count} messages arrived upstream", received.len()))
                .unwrap();
            received.insert(n);
        }
    };

    for n in 0..50u32 {
        local.publish(&format!("seq/{n}"), n.to_string()).await;
    }
    wait_for(&mut received, 50).await;

    // Upstream goes away; messages wait in the queue file.
    stop(upstream);
    for n in 50..150u32 {
        local.publish(&format!("seq/{n}"), n.to_string()).await;
    }
    loop {
        let message = local.wait_on(&schema::broker::stats_topic("test")).await;
        let stats: BrokerHealth = schema::payload::parse(&message.payload).unwrap();
        if stats.uplink_queue >= 100 {
            break;
        }
    }
    let size = std::fs::metadata(&queue).unwrap().len();
    assert!(size > 0 && size <= MAX_QUEUE_BYTES, "queue file of {size} bytes");

    // Upstream is back: everything arrives, and commands flow down.
    let upstream = mosquitto(port, &dir).unwrap();
    // The uplink empties its queue once upstream takes messages again.
    loop {
        let message = local.wait_on(&schema::broker::stats_topic("test")).await;
        let stats: BrokerHealth = schema::payload::parse(&message.payload).unwrap();
        if stats.uplink_queue == 0 {
            break;
        }
    }
    wait_for(&mut received, 150).await;
    assert_eq!(received, (0..150).collect::<BTreeSet<u32>>());
    watcher.publish("fleet/cmd/leds", QoS::AtLeastOnce, false, b"on".to_vec()).await.unwrap();
    let command = local.wait_on("cmd/leds").await;
    assert_eq!(command.payload, b"on");
    assert!(std::fs::metadata(&queue).unwrap().len() <= MAX_QUEUE_BYTES);
    stop(upstream);
    assert!(broker.process.terminate().success());
}

/// Mosquitto's TLS listener with the development CA from `broker gen-certs`: the uplink's
/// messages arrive; with a CA that did not sign the server's certificate, the uplink refuses
/// the connection, says why, and keeps the messages in its queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_uplink_speaks_tls_and_checks_the_upstream_certificate() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = temp_dir("uplink-tls");
    let certs = dir.join("certs");
    broker::tls::generate_dev_certs(&certs, &[]).unwrap();
    let stranger = dir.join("stranger");
    broker::tls::generate_dev_certs(&stranger, &[]).unwrap();
    // Started as root, Mosquitto reads its key as its own user.
    std::fs::set_permissions(&certs, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(certs.join("server.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let (plain, tls) = (free_port(), free_port());
    let listener = format!(
        "listener {tls} 127.0.0.1\ncafile {0}/ca.pem\ncertfile {0}/server.pem\nkeyfile {0}/server.key\n",
        certs.display()
    );
    let Some(upstream) = mosquitto_with(plain, &dir, &listener) else {
        assert!(std::env::var_os("BUSGATE_REQUIRE_MOSQUITTO").is_none(), "mosquitto is required");
        eprintln!("mosquitto is not installed: uplink TLS test not run");
        return;
    };
    // The watcher reads upstream on the plain listener.
    let mut options = MqttOptions::new("watcher", "127.0.0.1", plain);
    options.set_keep_alive(Duration::from_secs(30));
    let (watcher, mut eventloop) = AsyncClient::new(options, 100);
    watcher.subscribe("fleet/#", QoS::AtLeastOnce).await.unwrap();
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(event) = eventloop.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = event {
                let _ = seen_tx.send(p.topic);
            }
        }
    });
    // Subscribed before anything is sent: wait for the SUBACK's effect through a probe.
    let probe = AsyncClient::new(MqttOptions::new("probe", "127.0.0.1", plain), 10);
    let (probe_client, mut probe_loop) = probe;
    tokio::spawn(async move { while probe_loop.poll().await.is_ok() {} });
    loop {
        probe_client.publish("fleet/probe", QoS::AtLeastOnce, false, b"x".to_vec()).await.unwrap();
        if tokio::time::timeout(Duration::from_millis(200), seen.recv()).await.is_ok() {
            break;
        }
    }

    let uplink = |ca: &Path, name: &str| {
        format!(
            "[broker]\nhealth_interval_s = 1\n[broker.uplink]\naddress = \"127.0.0.1:{tls}\"\nclient_id = \"{name}\"\nforward = [\"seq/#\"]\n\
             remote_prefix = \"fleet/\"\nqueue_path = \"{}\"\ntls = {{ ca = \"{}\" }}\n",
            dir.join(format!("{name}.queue")).display(),
            ca.display()
        )
    };
    let broker = Broker::start(&uplink(&certs.join("ca.pem"), "trusting"));
    let local = Client::connect(broker.address(), "local").await;
    for n in 0..20u32 {
        local.publish(&format!("seq/{n}"), n.to_string()).await;
    }
    let mut topics = BTreeSet::new();
    while topics.len() < 20 {
        let topic = tokio::time::timeout(TIMEOUT, seen.recv()).await.expect("messages over TLS").unwrap();
        if topic != "fleet/probe" {
            topics.insert(topic);
        }
    }
    assert_eq!(topics, (0..20).map(|n| format!("fleet/seq/{n}")).collect::<BTreeSet<_>>());
    assert!(broker.process.terminate().success());

    // Another CA: the handshake fails on the server's certificate, and the messages wait.
    let mut broker = Broker::start(&uplink(&stranger.join("ca.pem"), "doubting"));
    let mut local = Client::connect(broker.address(), "local").await;
    for n in 0..5u32 {
        local.publish(&format!("seq/{n}"), n.to_string()).await;
    }
    let line = broker.process.wait_line("the uplink cannot connect");
    assert!(line.contains("certificate"), "{line}");
    local.subscribe(&schema::broker::stats_topic("test")).await;
    loop {
        let message = local.wait_on(&schema::broker::stats_topic("test")).await;
        let stats: BrokerHealth = schema::payload::parse(&message.payload).unwrap();
        assert!(!stats.uplink_connected, "connected to a server whose certificate it cannot trust");
        if stats.uplink_queue == 5 {
            break;
        }
    }
    assert!(broker.process.terminate().success());
    stop(upstream);
}
