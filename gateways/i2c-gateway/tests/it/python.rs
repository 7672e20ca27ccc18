//! The README's Python example (paho-mqtt + jsonschema) against the gateway: it validates every
//! payload against the checked-in schemas and sends a command.
//!
//! Needs `pip install -r examples/python/requirements.txt` (`.ci/run` does it). Without it the
//! test says so and passes, unless BUSGATE_REQUIRE_PYTHON is set, as in CI.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use test_support::{Broker, Client, TIMEOUT};

use crate::{Gateway, PCA9685, json, topic};

fn python_has_deps() -> bool {
    Command::new("python3")
        .args(["-c", "import paho.mqtt, jsonschema"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_python_example_validates_payloads_and_sends_a_command() {
    if !python_has_deps() {
        assert!(
            std::env::var_os("BUSGATE_REQUIRE_PYTHON").is_none(),
            "python3 with paho-mqtt and jsonschema is required"
        );
        eprintln!("paho-mqtt/jsonschema not installed: Python example not run");
        return;
    }
    let broker = Broker::start();
    let mut client = Client::connect(broker.address(), "watcher").await;
    client.subscribe("busgate/test/#").await;
    let gateway = Gateway::start(broker.address());
    client.wait_for(|m| m.topic == topic("leds", "availability") && json(m)["state"] == "online").await;

    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/python/watch.py");
    let mut child = Command::new("python3")
        .arg(script)
        .args(["--port", &broker.port.to_string(), "--board", "test", "--count", "10"])
        .args(["--command", "leds", r#"{"action": "set_duty", "args": {"channel": 2, "duty": 0.75}}"#])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the Python example did not finish");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("reply: ok"), "{stdout}");
    assert!(stdout.contains("busgate/test/i2c/i2c1/ambient/state"), "{stdout}");
    assert_eq!(gateway.bus.inspect(PCA9685, "ch2"), Some(0.75));
    gateway.stop().await;
}
