//! Logins and access rules, over the wire: CONNACK codes for refused logins, SUBACK failure
//! codes and dropped messages for what an identity may not do.

use std::sync::OnceLock;
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, Packet, QoS, SubscribeReasonCode,
};
use test_support::{Client, TIMEOUT};

use crate::Broker;

const GATEWAY_PASSWORD: &str = "gateway-secret";
const APP_PASSWORD: &str = "app-secret";

/// Hashing is slow on purpose, so every test shares two hashes.
fn users() -> &'static str {
    static USERS: OnceLock<String> = OnceLock::new();
    USERS.get_or_init(|| {
        let gateway = broker::policy::hash_password(GATEWAY_PASSWORD).unwrap();
        let app = broker::policy::hash_password(APP_PASSWORD).unwrap();
        format!(
            "[broker.users.i2c-gateway]\npassword_hash = \"{gateway}\"\n\
             [broker.users.app]\npassword_hash = \"{app}\"\n\
             [broker.users.watcher]\npassword_hash = \"{app}\"\nsubscribe = [\"busgate/test/%u/#\", \"own/%c/+\"]\n\
             publish = [\"own/%c/out\"]\n\
             [[bus]]\nname = \"i2c1\"\nkind = \"i2c\"\nmock = true\n"
        )
    })
}

fn options(broker: &Broker, id: &str, login: Option<(&str, &str)>) -> MqttOptions {
    let address = broker.address();
    let mut options = MqttOptions::new(id, address.ip().to_string(), address.port());
    options.set_keep_alive(Duration::from_secs(30));
    if let Some((user, password)) = login {
        options.set_credentials(user, password);
    }
    options
}

/// The first thing the event loop says: the CONNACK's code, or the error.
async fn first_answer(options: MqttOptions) -> Result<(), ConnectionError> {
    let (_client, mut eventloop) = AsyncClient::new(options, 10);
    tokio::time::timeout(TIMEOUT, async {
        loop {
            match eventloop.poll().await? {
                Event::Incoming(Packet::ConnAck(_)) => return Ok(()),
                _ => continue,
            }
        }
    })
    .await
    .expect("an answer to CONNECT")
}

#[track_caller]
fn assert_refused(outcome: Result<(), ConnectionError>, code: ConnectReturnCode) {
    match outcome {
        Err(ConnectionError::ConnectionRefused(got)) => assert_eq!(got, code),
        other => panic!("expected a CONNACK refusing with {code:?}, got {other:?}"),
    }
}

/// A connected client and its event loop, driven by the test.
async fn connect(options: MqttOptions) -> (AsyncClient, EventLoop) {
    let (client, mut eventloop) = AsyncClient::new(options, 100);
    tokio::time::timeout(TIMEOUT, async {
        loop {
            if let Event::Incoming(Packet::ConnAck(_)) = eventloop.poll().await.unwrap() {
                return;
            }
        }
    })
    .await
    .expect("CONNACK");
    (client, eventloop)
}

/// Polls until a SUBACK arrives and returns its codes.
async fn suback(eventloop: &mut EventLoop) -> Vec<SubscribeReasonCode> {
    tokio::time::timeout(TIMEOUT, async {
        loop {
            if let Event::Incoming(Packet::SubAck(ack)) = eventloop.poll().await.unwrap() {
                return ack.return_codes;
            }
        }
    })
    .await
    .expect("SUBACK")
}

/// Polls until a PUBACK arrives.
async fn puback(eventloop: &mut EventLoop) {
    tokio::time::timeout(TIMEOUT, async {
        loop {
            if let Event::Incoming(Packet::PubAck(_)) = eventloop.poll().await.unwrap() {
                return;
            }
        }
    })
    .await
    .expect("PUBACK");
}

#[tokio::test]
async fn anonymous_clients_are_refused_where_not_enabled() {
    // Declaring users turns anonymous access off unless a listener asks for it.
    let broker = Broker::start(users());
    assert_refused(first_answer(options(&broker, "anon", None)).await, ConnectReturnCode::NotAuthorized);
    assert!(broker.process.terminate().success());
}

#[tokio::test]
async fn a_wrong_password_or_unknown_user_is_refused_with_a_connack_code() {
    let broker = Broker::start(users());
    let wrong = options(&broker, "app1", Some(("app", "not-the-password")));
    assert_refused(first_answer(wrong).await, ConnectReturnCode::BadUserNamePassword);
    let unknown = options(&broker, "app1", Some(("mallory", APP_PASSWORD)));
    assert_refused(first_answer(unknown).await, ConnectReturnCode::BadUserNamePassword);
    // The right one works, twice (the second from the remembered verification).
    for _ in 0..2 {
        first_answer(options(&broker, "app1", Some(("app", APP_PASSWORD)))).await.unwrap();
    }
    assert!(broker.process.terminate().success());
}

#[tokio::test]
async fn anonymous_access_can_be_enabled_on_a_listener() {
    let extra = format!("anonymous = true\n{}", users());
    let broker = Broker::start(&extra);
    first_answer(options(&broker, "anon", None)).await.unwrap();
    assert!(broker.process.terminate().success());
}

#[tokio::test]
async fn a_gateway_cannot_subscribe_to_everything_nor_command_another_gateway() {
    let broker = Broker::start(users());
    let (app, mut app_loop) = connect(options(&broker, "app", Some(("app", APP_PASSWORD)))).await;
    app.subscribe("busgate/#", QoS::AtLeastOnce).await.unwrap();
    assert_eq!(suback(&mut app_loop).await, [SubscribeReasonCode::Success(QoS::AtLeastOnce)]);

    let login = Some(("i2c-gateway", GATEWAY_PASSWORD));
    let (gateway, mut gateway_loop) = connect(options(&broker, "test-i2c-gateway", login)).await;
    gateway.subscribe("#", QoS::AtLeastOnce).await.unwrap();
    assert_eq!(suback(&mut gateway_loop).await, [SubscribeReasonCode::Failure]);
    // A SUBSCRIBE with an allowed and a denied filter: each gets its own code.
    let filters = ["busgate/test/i2c/+/+/set", "busgate/test/spi/+/+/set"]
        .map(|path| rumqttc::SubscribeFilter::new(path.into(), QoS::AtLeastOnce));
    gateway.subscribe_many(filters).await.unwrap();
    assert_eq!(
        suback(&mut gateway_loop).await,
        [SubscribeReasonCode::Success(QoS::AtLeastOnce), SubscribeReasonCode::Failure]
    );

    // Another gateway's command topic: acknowledged (MQTT 3.1.1 has no refusal code) and dropped.
    gateway.publish("busgate/test/spi/spi0/adc/set", QoS::AtLeastOnce, false, "x").await.unwrap();
    puback(&mut gateway_loop).await;
    gateway.publish("busgate/test/i2c/i2c1/ambient/state", QoS::AtLeastOnce, false, "ok").await.unwrap();
    puback(&mut gateway_loop).await;

    let first = tokio::time::timeout(TIMEOUT, async {
        loop {
            if let Event::Incoming(Packet::Publish(publish)) = app_loop.poll().await.unwrap()
                && publish.topic != schema::broker::stats_topic("test")
            {
                return publish.topic;
            }
        }
    })
    .await
    .expect("the allowed message");
    assert_eq!(first, "busgate/test/i2c/i2c1/ambient/state", "the denied message came first");

    // The gateway's own commands reach it.
    app.publish("busgate/test/i2c/i2c1/ambient/set", QoS::AtLeastOnce, false, "{}").await.unwrap();
    let command = tokio::time::timeout(TIMEOUT, async {
        loop {
            tokio::select! {
                event = gateway_loop.poll() => if let Event::Incoming(Packet::Publish(publish)) = event.unwrap() {
                    return publish.topic;
                },
                event = app_loop.poll() => { event.unwrap(); }
            }
        }
    })
    .await
    .expect("the command");
    assert_eq!(command, "busgate/test/i2c/i2c1/ambient/set");

    let entries = broker.wait_journal("busgate/test/i2c/i2c1/ambient/set").await;
    assert!(entries.iter().all(|e| e.topic != "busgate/test/spi/spi0/adc/set"), "denied message journaled");
    assert!(broker.process.terminate().success());
}

#[tokio::test]
async fn rules_substitute_user_name_and_client_id() {
    let broker = Broker::start(users());
    let (watcher, mut watcher_loop) = connect(options(&broker, "w1", Some(("watcher", APP_PASSWORD)))).await;
    for (filter, allowed) in
        [("busgate/test/watcher/#", true), ("busgate/test/app/#", false), ("own/w1/x", true), ("own/w2/x", false)]
    {
        watcher.subscribe(filter, QoS::AtMostOnce).await.unwrap();
        let expected =
            if allowed { SubscribeReasonCode::Success(QoS::AtMostOnce) } else { SubscribeReasonCode::Failure };
        assert_eq!(suback(&mut watcher_loop).await, [expected], "{filter}");
    }
    // Unsubscribing answers once, whether or not the filter was subscribed.
    watcher.unsubscribe("own/w1/x").await.unwrap();
    watcher.unsubscribe("never/subscribed").await.unwrap();
    let mut unsubacks = 0;
    tokio::time::timeout(TIMEOUT, async {
        while unsubacks < 2 {
            if let Event::Incoming(Packet::UnsubAck(_)) = watcher_loop.poll().await.unwrap() {
                unsubacks += 1;
            }
        }
    })
    .await
    .expect("two UNSUBACKs");
    assert!(broker.process.terminate().success());
}

#[tokio::test]
async fn the_sim_board_keeps_anonymous_clients_working() {
    // Existing clients (test-support's Client) connect without a user name.
    let broker = Broker::start("");
    let mut client = Client::connect(broker.address(), "plain").await;
    client.subscribe("a/#").await;
    client.publish("a/b", "x").await;
    client.wait_on("a/b").await;
    assert!(broker.process.terminate().success());
}
