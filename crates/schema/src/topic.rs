//! The topic grammar. One function per topic kind; `docs/topics.md` is generated from
//! [`TOPICS`] and a test keeps the two in step.
//!
//! ```text
//! busgate/{board}/{bus_kind}/{bus}/{device}/state         reading, retained
//! busgate/{board}/{bus_kind}/{bus}/{device}/set           command to the device
//! busgate/{board}/{bus_kind}/{bus}/{device}/reply         reply to a command, carries its id
//! busgate/{board}/{bus_kind}/{bus}/{device}/availability  online/offline with a reason, retained
//! busgate/{board}/{gateway}/status                        gateway process status, retained, last will
//! busgate/{board}/{gateway}/health                        gateway counters, retained
//! ```
//!
//! Names are validated by the board crate (lowercase letters, digits, `-`, `_`), so they never
//! contain `/`, `+` or `#`. A gateway's name always ends in `-gateway` and a bus kind never
//! does, so the two kinds of topic cannot collide.

/// First level of every busgate topic.
pub const ROOT: &str = "busgate";

/// Identifies one device: the levels before the leaf of its topics.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeviceTopics {
    prefix: String,
}

impl DeviceTopics {
    pub fn new(board: &str, bus_kind: &str, bus: &str, device: &str) -> Self {
        Self { prefix: format!("{ROOT}/{board}/{bus_kind}/{bus}/{device}") }
    }
    /// Latest reading, retained, QoS 1.
    pub fn state(&self) -> String {
        format!("{}/state", self.prefix)
    }
    /// Commands to the device.
    pub fn set(&self) -> String {
        format!("{}/set", self.prefix)
    }
    /// Replies to commands.
    pub fn reply(&self) -> String {
        format!("{}/reply", self.prefix)
    }
    /// Device availability, retained.
    pub fn availability(&self) -> String {
        format!("{}/availability", self.prefix)
    }
    /// Simulation control (mock buses only): fault injection and simulated inputs.
    pub fn sim(&self) -> String {
        format!("{}/sim", self.prefix)
    }
}

/// Identifies one gateway process.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GatewayTopics {
    prefix: String,
}

impl GatewayTopics {
    pub fn new(board: &str, gateway: &str) -> Self {
        Self { prefix: format!("{ROOT}/{board}/{gateway}") }
    }
    /// Process status, retained; also the last will.
    pub fn status(&self) -> String {
        format!("{}/status", self.prefix)
    }
    /// Counters, retained.
    pub fn health(&self) -> String {
        format!("{}/health", self.prefix)
    }
}

/// The filter a gateway subscribes to for the commands of all its devices of one bus kind.
pub fn command_filter(board: &str, bus_kind: &str) -> String {
    format!("{ROOT}/{board}/{bus_kind}/+/+/set")
}

/// The filter for the simulation controls of all devices of one bus kind (mock mode only).
pub fn sim_filter(board: &str, bus_kind: &str) -> String {
    format!("{ROOT}/{board}/{bus_kind}/+/+/sim")
}

/// Everything under a board, for watching.
pub fn board_filter(board: &str) -> String {
    format!("{ROOT}/{board}/#")
}

/// A parsed busgate topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<'a> {
    Device { board: &'a str, bus_kind: &'a str, bus: &'a str, device: &'a str, leaf: DeviceLeaf },
    Gateway { board: &'a str, gateway: &'a str, leaf: GatewayLeaf },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceLeaf {
    State,
    Set,
    Reply,
    Availability,
    Sim,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayLeaf {
    Status,
    Health,
}

/// Parses a topic of the grammar above; anything else is `None`.
pub fn parse(topic: &str) -> Option<Parsed<'_>> {
    let levels: Vec<&str> = topic.split('/').collect();
    match levels.as_slice() {
        [ROOT, board, bus_kind, bus, device, leaf] => {
            let leaf = match *leaf {
                "state" => DeviceLeaf::State,
                "set" => DeviceLeaf::Set,
                "reply" => DeviceLeaf::Reply,
                "availability" => DeviceLeaf::Availability,
                "sim" => DeviceLeaf::Sim,
                _ => return None,
            };
            Some(Parsed::Device { board, bus_kind, bus, device, leaf })
        }
        [ROOT, board, gateway, leaf] => {
            let leaf = match *leaf {
                "status" => GatewayLeaf::Status,
                "health" => GatewayLeaf::Health,
                _ => return None,
            };
            Some(Parsed::Gateway { board, gateway, leaf })
        }
        _ => None,
    }
}

/// Who publishes a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The gateway publishes; applications subscribe.
    FromGateway,
    /// Applications publish; the gateway subscribes.
    ToGateway,
}

/// One row of the topic table in `docs/topics.md`.
#[derive(Debug, Clone, Copy)]
pub struct TopicDoc {
    pub pattern: &'static str,
    pub direction: Direction,
    pub retained: bool,
    pub qos: u8,
    /// File name in `schemas/` of the payload's JSON Schema.
    pub schema: &'static str,
    pub meaning: &'static str,
}

/// The complete topic grammar, as documented.
pub const TOPICS: &[TopicDoc] = &[
    TopicDoc {
        pattern: "busgate/{board}/{bus_kind}/{bus}/{device}/state",
        direction: Direction::FromGateway,
        retained: true,
        qos: 1,
        schema: "reading.json",
        meaning: "the device's latest reading: named values with units, a timestamp and a sequence number",
    },
    TopicDoc {
        pattern: "busgate/{board}/{bus_kind}/{bus}/{device}/set",
        direction: Direction::ToGateway,
        retained: false,
        qos: 1,
        schema: "command.json",
        meaning: "a command to the device, with an id that the reply carries back",
    },
    TopicDoc {
        pattern: "busgate/{board}/{bus_kind}/{bus}/{device}/reply",
        direction: Direction::FromGateway,
        retained: false,
        qos: 1,
        schema: "reply.json",
        meaning: "the reply to every command: ok with the values it set, or an error kind and message",
    },
    TopicDoc {
        pattern: "busgate/{board}/{bus_kind}/{bus}/{device}/availability",
        direction: Direction::FromGateway,
        retained: true,
        qos: 1,
        schema: "availability.json",
        meaning: "online, or offline with the reason (no acknowledge, bus error, chip fault)",
    },
    TopicDoc {
        pattern: "busgate/{board}/{bus_kind}/{bus}/{device}/sim",
        direction: Direction::ToGateway,
        retained: false,
        qos: 1,
        schema: "command.json",
        meaning: "mock buses only: fault injection and simulated inputs (remove, restore, bus_error, set_input, ...), answered on reply",
    },
    TopicDoc {
        pattern: "busgate/{board}/{gateway}/status",
        direction: Direction::FromGateway,
        retained: true,
        qos: 1,
        schema: "status.json",
        meaning: "the gateway process: online, or offline (also its last will, sent by the broker when it dies)",
    },
    TopicDoc {
        pattern: "busgate/{board}/{gateway}/health",
        direction: Direction::FromGateway,
        retained: true,
        qos: 0,
        schema: "health.json",
        meaning: "gateway counters: uptime, messages out, errors, dropped, outbox length, devices online",
    },
    TopicDoc {
        pattern: "busgate/{board}/can/{bus}/{message}/state",
        direction: Direction::FromGateway,
        retained: true,
        qos: 1,
        schema: "can-message.json",
        meaning: "a DBC message decoded: signals with physical value, unit and value-table label; published by the bus's publish policy",
    },
    TopicDoc {
        pattern: "busgate/{board}/can/{bus}/{message}/set",
        direction: Direction::ToGateway,
        retained: false,
        qos: 1,
        schema: "command.json",
        meaning: "action `send`: encode the message from signal values by name (numbers or labels) and send it; answered on `{message}/reply`",
    },
    TopicDoc {
        pattern: "busgate/{board}/can/{bus}/id-{ID}/state",
        direction: Direction::FromGateway,
        retained: true,
        qos: 1,
        schema: "can-frame.json",
        meaning: "a raw frame (ID in hex as candump writes it, e.g. `id-123`, `id-18FEF100`), when the bus's `raw` setting asks for it",
    },
    TopicDoc {
        pattern: "busgate/{board}/can/{bus}/bus/state",
        direction: Direction::FromGateway,
        retained: true,
        qos: 1,
        schema: "can-bus.json",
        meaning: "the bus state (error_active, error_passive, bus_off, down) and frame counters; the bus's availability is on `bus/availability`",
    },
    TopicDoc {
        pattern: "busgate/{board}/can/{bus}/bus/set",
        direction: Direction::ToGateway,
        retained: false,
        qos: 1,
        schema: "command.json",
        meaning: "action `send_raw` (id, extended, fd, brs, rtr, data as hex), allowed when the board says `raw_send = true`; answered on `bus/reply`",
    },
];

/// The topic table as Markdown, as it stands in `docs/topics.md`.
pub fn markdown_table() -> String {
    let mut out = String::from("| topic | published by | retained | QoS | payload schema | meaning |\n");
    out.push_str("|---|---|---|---|---|---|\n");
    for t in TOPICS {
        let by = match t.direction {
            Direction::FromGateway => "gateway",
            Direction::ToGateway => "applications",
        };
        let retained = if t.retained { "yes" } else { "no" };
        out.push_str(&format!(
            "| `{}` | {by} | {retained} | {} | [`{}`](../crates/schema/schemas/{}) | {} |\n",
            t.pattern, t.qos, t.schema, t.schema, t.meaning
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_topics_follow_the_grammar() {
        let t = DeviceTopics::new("sim", "i2c", "i2c1", "ambient");
        assert_eq!(t.state(), "busgate/sim/i2c/i2c1/ambient/state");
        assert_eq!(t.set(), "busgate/sim/i2c/i2c1/ambient/set");
        assert_eq!(t.reply(), "busgate/sim/i2c/i2c1/ambient/reply");
        assert_eq!(t.availability(), "busgate/sim/i2c/i2c1/ambient/availability");
        let g = GatewayTopics::new("sim", "i2c-gateway");
        assert_eq!(g.status(), "busgate/sim/i2c-gateway/status");
        assert_eq!(g.health(), "busgate/sim/i2c-gateway/health");
        assert_eq!(command_filter("sim", "i2c"), "busgate/sim/i2c/+/+/set");
    }

    #[test]
    fn every_built_topic_parses_back() {
        let t = DeviceTopics::new("sim", "i2c", "i2c1", "ambient");
        for (topic, leaf) in [
            (t.state(), DeviceLeaf::State),
            (t.set(), DeviceLeaf::Set),
            (t.reply(), DeviceLeaf::Reply),
            (t.availability(), DeviceLeaf::Availability),
            (t.sim(), DeviceLeaf::Sim),
        ] {
            assert_eq!(
                parse(&topic),
                Some(Parsed::Device { board: "sim", bus_kind: "i2c", bus: "i2c1", device: "ambient", leaf })
            );
        }
        let g = GatewayTopics::new("sim", "i2c-gateway");
        assert_eq!(
            parse(&g.status()),
            Some(Parsed::Gateway { board: "sim", gateway: "i2c-gateway", leaf: GatewayLeaf::Status })
        );
        assert_eq!(parse("busgate/sim/i2c/i2c1/ambient/other"), None);
        assert_eq!(parse("other/sim/i2c-gateway/status"), None);
        assert_eq!(parse("busgate/sim/i2c/i2c1/ambient/state/extra"), None);
    }

    /// Each documented pattern, with its placeholders filled in, is what the functions build.
    #[test]
    fn documented_patterns_match_the_functions() {
        let fill = |pattern: &str| {
            pattern
                .replace("{board}", "b")
                .replace("{bus_kind}", "k")
                .replace("{bus}", "u")
                .replace("{device}", "d")
                .replace("{gateway}", "g-gateway")
                .replace("{message}", "M")
                .replace("{ID}", "123")
        };
        let t = DeviceTopics::new("b", "k", "u", "d");
        let g = GatewayTopics::new("b", "g-gateway");
        let can = crate::can::CanTopics::new("b", "u");
        let built = [
            t.state(),
            t.set(),
            t.reply(),
            t.availability(),
            t.sim(),
            g.status(),
            g.health(),
            can.message("M").state(),
            can.message("M").set(),
            can.frame(0x123, false),
            can.bus().state(),
            can.bus().set(),
        ];
        let documented: Vec<String> = TOPICS.iter().map(|doc| fill(doc.pattern)).collect();
        assert_eq!(documented, built);
    }
}
