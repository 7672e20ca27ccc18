//! Topic names, topic filters and access-rule patterns: validity, matching, and the rules a
//! gateway needs, derived from the topic grammar in [`crate::topic`].
//!
//! The broker uses these to refuse malformed topics and to decide, per identity, what a client
//! may publish and subscribe to. Patterns are topic filters in which `%c` (the client id) and
//! `%u` (the user name) are replaced before matching, as in Mosquitto's `pattern` lines.

use crate::topic::ROOT;

/// Why a topic name or filter is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("is empty")]
    Empty,
    #[error("is longer than 65535 bytes")]
    TooLong,
    #[error("is not valid UTF-8")]
    NotUtf8,
    #[error("contains a control character")]
    Control,
    #[error("contains a wildcard (+ or #)")]
    Wildcard,
    #[error("uses a wildcard that is not a whole level, or # before the last level")]
    BadWildcard,
}

/// Checks a PUBLISH topic name: non-empty, UTF-8, no wildcard, no control character (MQTT
/// 3.1.1 sections 1.5.3 and 4.7: U+0000 is forbidden, and the other control characters
/// U+0001..U+001F and U+007F..U+009F are refused here too, since no busgate topic uses them).
pub fn check_topic_name(topic: &[u8]) -> Result<&str, TopicError> {
    let topic = check_text(topic)?;
    if topic.contains(['+', '#']) {
        return Err(TopicError::Wildcard);
    }
    Ok(topic)
}

/// Checks a SUBSCRIBE or UNSUBSCRIBE topic filter: as a topic name, but `+` may stand alone in
/// a level and `#` alone in the last level.
pub fn check_topic_filter(filter: &str) -> Result<(), TopicError> {
    check_text(filter.as_bytes())?;
    let levels: Vec<&str> = filter.split('/').collect();
    for (index, level) in levels.iter().enumerate() {
        let wildcard = level.contains(['+', '#']);
        let alone = *level == "+" || (*level == "#" && index == levels.len() - 1);
        if wildcard && !alone {
            return Err(TopicError::BadWildcard);
        }
    }
    Ok(())
}

fn check_text(bytes: &[u8]) -> Result<&str, TopicError> {
    if bytes.is_empty() {
        return Err(TopicError::Empty);
    }
    if bytes.len() > usize::from(u16::MAX) {
        return Err(TopicError::TooLong);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| TopicError::NotUtf8)?;
    if text.chars().any(char::is_control) {
        return Err(TopicError::Control);
    }
    Ok(text)
}

/// Whether a topic name matches a topic filter (MQTT 3.1.1 section 4.7). Wildcards at the first
/// level do not match topics starting with `$`.
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut topic_levels = topic.split('/');
    for level in filter.split('/') {
        match (level, topic_levels.next()) {
            ("#", _) => return true,
            ("+", Some(_)) => {}
            (level, Some(topic_level)) if level == topic_level => {}
            _ => return false,
        }
    }
    topic_levels.next().is_none()
}

/// Whether every topic a subscription `filter` can match also matches `pattern`: the test for
/// allowing a SUBSCRIBE. `a/+/c` is within `a/#` and `a/+/+`, but `a/#` is not within `a/+`.
pub fn filter_within(filter: &str, pattern: &str) -> bool {
    if filter.starts_with('$') != pattern.starts_with('$') && !pattern.starts_with(['+', '#']) {
        return false;
    }
    if filter.starts_with('$') && pattern.starts_with(['+', '#']) {
        return false;
    }
    let mut filter_levels = filter.split('/');
    for level in pattern.split('/') {
        match (level, filter_levels.next()) {
            ("#", _) => return true,
            ("+", Some("#")) => return false,
            ("+", Some(_)) => {}
            (level, Some(filter_level)) if level == filter_level => {}
            _ => return false,
        }
    }
    filter_levels.next().is_none()
}

/// A pattern with `%c` replaced by the client id and `%u` by the user name. `None` when a value
/// needed is missing or could change the pattern's shape (it contains `/`, `+` or `#`), in
/// which case the rule applies to nothing.
pub fn substitute(pattern: &str, client_id: &str, username: Option<&str>) -> Option<String> {
    let unsafe_value = |value: &str| value.is_empty() || value.contains(['/', '+', '#']);
    let mut out = pattern.to_owned();
    if pattern.contains("%c") {
        if unsafe_value(client_id) {
            return None;
        }
        out = out.replace("%c", client_id);
    }
    if pattern.contains("%u") {
        let username = username.filter(|u| !unsafe_value(u))?;
        out = out.replace("%u", username);
    }
    Some(out)
}

/// What a gateway may publish: its devices' readings, replies and availability, its own status
/// and health, and (when the board publishes them) Home Assistant discovery configs.
pub fn gateway_publish(board: &str, bus_kind: &str, gateway: &str, homeassistant: Option<&str>) -> Vec<String> {
    let mut rules: Vec<String> =
        ["state", "reply", "availability"].iter().map(|leaf| format!("{ROOT}/{board}/{bus_kind}/+/+/{leaf}")).collect();
    rules.push(format!("{ROOT}/{board}/{gateway}/status"));
    rules.push(format!("{ROOT}/{board}/{gateway}/health"));
    if let Some(prefix) = homeassistant {
        rules.push(crate::homeassistant::config_filter(prefix));
    }
    rules
}

/// What a gateway may subscribe to: its devices' commands and simulation controls, and (when
/// the board publishes them) Home Assistant discovery configs, to clear stale ones.
pub fn gateway_subscribe(board: &str, bus_kind: &str, homeassistant: Option<&str>) -> Vec<String> {
    let mut rules = vec![crate::topic::command_filter(board, bus_kind), crate::topic::sim_filter(board, bus_kind)];
    if let Some(prefix) = homeassistant {
        rules.push(crate::homeassistant::config_filter(prefix));
    }
    rules
}

/// The identity `cargo xtask deploy` logs in with to see the gateways come online.
pub const DEPLOY_USER: &str = "deploy";

/// What the deploy identity may subscribe to: the gateways' status, nothing else. It may not
/// publish at all.
pub fn deploy_subscribe(board: &str) -> Vec<String> {
    vec![format!("{ROOT}/{board}/+/status")]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_name(topic: &[u8], expected: Result<(), TopicError>) {
        assert_eq!(check_topic_name(topic).map(|_| ()), expected, "{topic:?}");
    }

    #[test]
    fn topic_names() {
        check_name(b"busgate/sim/i2c/i2c1/a/state", Ok(()));
        check_name(b"/", Ok(()));
        check_name(b"", Err(TopicError::Empty));
        check_name(b"a/+", Err(TopicError::Wildcard));
        check_name(b"a/#", Err(TopicError::Wildcard));
        check_name(b"a\0b", Err(TopicError::Control));
        check_name(b"a\x1fb", Err(TopicError::Control));
        check_name("a\u{85}b".as_bytes(), Err(TopicError::Control));
        check_name(b"a\xff", Err(TopicError::NotUtf8));
        check_name(b"\xed\xa0\x80", Err(TopicError::NotUtf8));
    }

    #[test]
    fn topic_filters() {
        for good in ["#", "+", "a/+/b", "a/#", "+/+", "/", "a//b"] {
            assert_eq!(check_topic_filter(good), Ok(()), "{good}");
        }
        for bad in ["a#", "a/#/b", "a+/b", "#/a", "a/b+"] {
            assert_eq!(check_topic_filter(bad), Err(TopicError::BadWildcard), "{bad}");
        }
        assert_eq!(check_topic_filter(""), Err(TopicError::Empty));
    }

    #[test]
    fn matching() {
        assert!(matches("a/+/c", "a/b/c"));
        assert!(matches("a/#", "a"));
        assert!(matches("a/#", "a/b/c"));
        assert!(matches("#", "a/b"));
        assert!(!matches("#", "$SYS/x"));
        assert!(!matches("+/x", "$SYS/x"));
        assert!(!matches("a/+", "a/b/c"));
        assert!(!matches("a/b", "a/b/c"));
        assert!(!matches("a/b/c", "a/b"));
    }

    #[test]
    fn filters_within_patterns() {
        assert!(filter_within("a/+/c", "a/#"));
        assert!(filter_within("a/+/c", "a/+/+"));
        assert!(filter_within("a/b/c", "a/+/c"));
        assert!(filter_within("a/#", "a/#"));
        assert!(filter_within("a/#", "#"));
        assert!(!filter_within("a/#", "a/+"));
        assert!(!filter_within("#", "a/#"));
        assert!(!filter_within("a/+", "a/b"));
        assert!(!filter_within("$SYS/#", "#"));
        assert!(filter_within("$SYS/a", "$SYS/+"));
        assert!(!filter_within("a/b/c", "a/b"));
    }

    #[test]
    fn substitution() {
        assert_eq!(substitute("u/%u/c/%c/#", "c1", Some("ann")), Some("u/ann/c/c1/#".into()));
        assert_eq!(substitute("a/%u", "c1", None), None);
        assert_eq!(substitute("a/%c", "x/#", None), None);
        assert_eq!(substitute("a/%c", "", None), None);
        assert_eq!(substitute("a/b", "", None), Some("a/b".into()));
    }

    #[test]
    fn gateway_rules_cover_what_a_gateway_does_and_no_more() {
        let publish = gateway_publish("sim", "i2c", "i2c-gateway", Some("homeassistant"));
        let subscribe = gateway_subscribe("sim", "i2c", Some("homeassistant"));
        let devices = crate::topic::DeviceTopics::new("sim", "i2c", "i2c1", "ambient");
        let gateway = crate::topic::GatewayTopics::new("sim", "i2c-gateway");
        let may_publish = |topic: &str| publish.iter().any(|rule| matches(rule, topic));
        for topic in [devices.state(), devices.reply(), devices.availability(), gateway.status(), gateway.health()] {
            assert!(may_publish(&topic), "{topic}");
        }
        assert!(may_publish("homeassistant/sensor/busgate_sim_i2c_i2c1_ambient/temperature/config"));
        let other = crate::topic::DeviceTopics::new("sim", "spi", "spi0", "adc");
        for topic in [devices.set(), devices.sim(), other.set(), other.state(), "busgate/sim/spi-gateway/status".into()]
        {
            assert!(!may_publish(&topic), "{topic}");
        }
        let may_subscribe = |filter: &str| subscribe.iter().any(|rule| filter_within(filter, rule));
        assert!(may_subscribe(&crate::topic::command_filter("sim", "i2c")));
        assert!(may_subscribe(&crate::topic::sim_filter("sim", "i2c")));
        assert!(may_subscribe(&devices.set()));
        assert!(!may_subscribe("#"));
        assert!(!may_subscribe(&crate::topic::command_filter("sim", "spi")));
        assert!(!may_subscribe(&devices.state()));
    }
}
