//! Board and DBC problems: messy DBC files load with warnings naming the line; unusable
//! settings are refused naming the board file's line.

use std::path::Path;

use super::*;

fn plan(text: &str) -> anyhow::Result<can_gateway::Plan> {
    let board = board::Board::parse(text, Path::new(BOARD_PATH))?;
    can_gateway::plan(&board)
}

#[test]
fn a_messy_dbc_loads_with_warnings_naming_lines() {
    let dir = test_support::temp_dir("messy-dbc");
    let dbc = dir.join("messy.dbc");
    std::fs::write(
        &dbc,
        "BO_ 100 Good: 1 ECU\n SG_ A : 0|8@1+ (1,0) [0|0] \"\" GW\nthis is not a statement;\nBO_ 101 TooLong: 1 ECU\n SG_ B : 4|8@1+ (1,0) [0|0] \"\" GW\n",
    )
    .unwrap();
    let text = board_text("127.0.0.1:1".parse().unwrap(), "").replace("\"test.dbc\"", &format!("{dbc:?}"));
    let plan = plan(&text).unwrap();
    let warnings = plan.warnings.join("\n");
    assert!(warnings.contains("line 3"), "{warnings}");
    assert!(warnings.contains("line 5"), "{warnings}");
    assert_eq!(plan.buses[0].decoder.messages().len(), 2, "the good parts are kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_with_a_messy_dbc_runs_and_decodes_what_is_usable() {
    let dir = test_support::temp_dir("messy-dbc-run");
    let dbc = dir.join("messy.dbc");
    std::fs::write(
        &dbc,
        "BO_ 256 Good: 2 ECU\n SG_ A : 0|8@1+ (1,0) [0|0] \"\" GW\n SG_ Broken : 8|99@1+ (1,0) [0|0] \"\" GW\nBA_ \"Nonsense\" BO_ 999 1;\n",
    )
    .unwrap();
    let broker = test_support::Broker::start();
    let mut client = Client::connect(broker.address(), "watcher").await;
    client.subscribe("busgate/test/#").await;
    let text = board_text(broker.address(), "").replace("\"test.dbc\"", &format!("{dbc:?}"));
    let gateway = Gateway::start_board(&text);
    client.wait_for(|m| m.topic == topic("bus", "availability") && json(m)["state"] == "online").await;
    gateway.node().send_now(&CanFrame::classic(0x100, false, &[7, 0]).unwrap()).unwrap();
    let good = client.wait_on(&topic("Good", "state")).await;
    assert_eq!(json(&good)["signals"]["A"]["value"], 7);
    gateway.stop().await;
}

#[test]
fn a_missing_dbc_file_names_the_board_line() {
    let text = board_text("127.0.0.1:1".parse().unwrap(), "").replace("\"test.dbc\"", "\"nope.dbc\"");
    let error = plan(&text).unwrap_err().to_string();
    assert!(error.starts_with("tests/fixtures/board.toml:20: "), "{error}");
    assert!(error.contains("nope.dbc"), "{error}");
}

#[test]
fn a_policy_for_an_unknown_message_is_refused() {
    let text = board_text("127.0.0.1:1".parse().unwrap(), "[bus.messages.Engin]\nmode = \"every\"");
    let error = plan(&text).unwrap_err().to_string();
    assert!(error.contains("no DBC message \"Engin\"; messages: "), "{error}");
    assert!(error.contains(":23: "), "{error}");
}

#[test]
fn the_sim_board_plans() {
    let board = board::Board::load(Path::new("../../boards/sim.toml")).unwrap();
    let plan = can_gateway::plan(&board).unwrap();
    assert_eq!(plan.warnings, Vec::<String>::new(), "the shipped demo DBC is clean");
    assert_eq!(plan.buses.len(), 1);
    assert!(plan.buses[0].decoder.message_by_name("Diagnostics").unwrap().1.fd);
}
