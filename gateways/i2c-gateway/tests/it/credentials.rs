//! The gateway logs in with its own identity, from a mode 0600 password file, and the access
//! rules the broker derives for it from the board let it do all its work.

use std::os::unix::fs::PermissionsExt as _;

use test_support::{Broker, Client, free_port, hash_password, temp_dir};

use crate::{Gateway, command, json, topic};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_logs_in_from_its_password_file_and_its_rules_suffice() {
    let dir = temp_dir("credentials");
    let password_file = dir.join("i2c-gateway.password");
    std::fs::write(&password_file, "s3cret-for-the-gateway\n").unwrap();
    std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let hash = hash_password("s3cret-for-the-gateway");
    // The gateway's listener wants a login; the application (test-support's client has none)
    // uses a second, anonymous listener. The gateway's rules come from the bus below.
    let apps = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let extra = format!(
        "anonymous = false\n[broker.listeners.apps]\naddress = \"{apps}\"\nanonymous = true\n\
         [broker.users.i2c-gateway]\npassword_hash = \"{hash}\"\n\
         [[bus]]\nname = \"i2c1\"\nkind = \"i2c\"\nmock = true\n"
    );
    let broker = Broker::start_on(free_port(), &extra);
    let mut client = Client::connect(apps, "app").await;
    client.subscribe("busgate/test/#").await;

    let gateway = Gateway::start_with(broker.address(), |settings| settings.password_file = Some(password_file));
    client.wait_for(|m| m.topic == topic("leds", "availability") && json(m)["state"] == "online").await;
    let reply = command(
        &mut client,
        "leds",
        "c1",
        r#"{"v":1,"id":"$ID","action":"set_duty","args":{"channel":1,"duty":0.25}}"#,
    )
    .await;
    assert_eq!(reply["ok"], true, "{reply}");
    let status = client.seen_or_wait("busgate/test/i2c-gateway/status").await;
    assert_eq!(json(&status)["state"], "online");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_connects_over_the_brokers_unix_socket_as_its_uid_says() {
    let dir = temp_dir("gateway-socket");
    let socket = dir.join("mqtt.sock");
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let uid = status.lines().find(|line| line.starts_with("Uid:")).unwrap().split_whitespace().nth(1).unwrap();
    // No password anywhere: the broker knows the gateway by the uid of the socket's peer, and
    // its rules come from the bus below. Applications use an anonymous TCP listener.
    let hash = hash_password("unused");
    let apps = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let port = free_port();
    let extra = format!(
        "anonymous = false\n[broker.listeners.apps]\naddress = \"{apps}\"\nanonymous = true\n\
         [broker.users.i2c-gateway]\npassword_hash = \"{hash}\"\n\
         [broker.sockets.local]\npath = \"{}\"\npeers = {{ \"{uid}\" = \"i2c-gateway\" }}\n\
         [[bus]]\nname = \"i2c1\"\nkind = \"i2c\"\nmock = true\n",
        socket.display()
    );
    let broker = Broker::start_on(port, &extra);
    let mut client = Client::connect(apps, "app").await;
    client.subscribe("busgate/test/#").await;

    let board = crate::board_text(broker.address())
        .replace("[gateway]\n", &format!("[gateway]\nbroker_socket = \"{}\"\n", socket.display()))
        + &format!("[broker.sockets.local]\npath = \"{}\"\n", socket.display());
    let gateway = Gateway::start_board(&board, |_| {});
    client.wait_for(|m| m.topic == topic("leds", "availability") && json(m)["state"] == "online").await;
    let reply =
        command(&mut client, "leds", "s1", r#"{"v":1,"id":"$ID","action":"set_duty","args":{"channel":1,"duty":0.5}}"#)
            .await;
    assert_eq!(reply["ok"], true, "{reply}");
    gateway.stop().await;
}
