//! Who may connect and what they may do: the identities of the board file, their password
//! hashes and their access rules.
//!
//! Passwords are stored as Argon2id hashes in PHC string form. Verifying one costs tens of
//! milliseconds on a board by design, and it runs on the connection's task, so a password that
//! verified once is remembered (in memory only) and later logins with it cost a comparison.
//!
//! Access rules are topic patterns (filters with `%c` and `%u`, see [`schema::acl`]). An
//! identity without any rule may do everything; once it has a rule, anything not allowed is
//! denied. A user named after a gateway program of the board (e.g. `i2c-gateway`) gets the
//! rules for that gateway on top of its own: its subtree for publishing, its command topics
//! for subscribing.

use std::collections::HashMap;
use std::sync::Mutex;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use board::Board;

/// A password that could not be hashed, or a hash that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("user {user:?}: password_hash is not a PHC hash string: {error}")]
    Hash { user: String, error: String },
    #[error("{}: {error}", path.display())]
    HashFile { path: std::path::PathBuf, error: String },
    #[error("no random numbers from the operating system: {0}")]
    Random(String),
    #[error("cannot hash the password: {0}")]
    Hashing(String),
}

/// Hashes a password with Argon2id and a random salt, as a PHC string for the board file.
pub fn hash_password(password: &str) -> Result<String, PolicyError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|error| PolicyError::Random(error.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|error| PolicyError::Hashing(error.to_string()))?;
    let hash = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|error| PolicyError::Hashing(error.to_string()))?;
    Ok(hash.to_string())
}

/// A new random password: 32 characters from 64 symbols (192 bits).
pub fn random_password() -> Result<String, PolicyError> {
    const SYMBOLS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|error| PolicyError::Random(error.to_string()))?;
    Ok(bytes.iter().map(|byte| char::from(SYMBOLS[usize::from(byte % 64)])).collect())
}

/// The access rules of one identity.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    pub publish: Vec<String>,
    pub subscribe: Vec<String>,
}

impl Rules {
    fn extend(&mut self, other: Rules) {
        self.publish.extend(other.publish);
        self.subscribe.extend(other.subscribe);
    }

    fn restricted(&self) -> bool {
        !self.publish.is_empty() || !self.subscribe.is_empty()
    }

    /// The rules of one connection, with `%c` and `%u` replaced; `None` for no restriction.
    pub fn bind(&self, client_id: &str, username: Option<&str>) -> Option<Bound> {
        if !self.restricted() {
            return None;
        }
        let bind = |patterns: &[String]| {
            patterns.iter().filter_map(|pattern| schema::acl::substitute(pattern, client_id, username)).collect()
        };
        Some(Bound { publish: bind(&self.publish), subscribe: bind(&self.subscribe) })
    }
}

/// One connection's rules, ready to check against.
#[derive(Debug, Clone)]
pub struct Bound {
    publish: Vec<String>,
    subscribe: Vec<String>,
}

impl Bound {
    pub fn may_publish(&self, topic: &str) -> bool {
        self.publish.iter().any(|rule| schema::acl::matches(rule, topic))
    }

    pub fn may_subscribe(&self, filter: &str) -> bool {
        self.subscribe.iter().any(|rule| schema::acl::filter_within(filter, rule))
    }
}

fn check_hash(user: &str, hash: &str) -> Result<(), PolicyError> {
    PasswordHash::new(hash)
        .map(|_| ())
        .map_err(|error| PolicyError::Hash { user: user.to_owned(), error: error.to_string() })
}

/// The rules a user named after one of the board's gateway programs gets on top of its own:
/// publishing in its subtree, subscribing to its command topics. Nothing for other names.
fn gateway_rules(board: &Board, user: &str) -> Rules {
    let prefix = board.homeassistant.as_deref();
    let mut rules = Rules::default();
    if let Some(kind) = board.buses.iter().map(|bus| bus.kind).find(|kind| kind.gateway() == user) {
        rules.publish = schema::acl::gateway_publish(&board.name, kind.as_str(), user, prefix);
        rules.subscribe = schema::acl::gateway_subscribe(&board.name, kind.as_str(), prefix);
    }
    rules
}

/// The identities whose hashes the installer writes into the board's credentials directory
/// (`{name}.hash`, beside the gateway's `{name}.password`): one per gateway program, and the
/// deploy tool's, which may only read the gateways' status.
fn installed_identities(board: &Board) -> Vec<(String, Rules)> {
    let mut identities: Vec<(String, Rules)> = board
        .gateway_kinds()
        .into_iter()
        .map(|kind| (kind.gateway().to_owned(), gateway_rules(board, kind.gateway())))
        .collect();
    let deploy = Rules { publish: Vec::new(), subscribe: schema::acl::deploy_subscribe(&board.name) };
    identities.push((schema::acl::DEPLOY_USER.to_owned(), deploy));
    identities
}

struct User {
    hash: String,
    rules: Rules,
    /// The password that verified last, so that a reconnect does not pay for Argon2 again.
    verified: Mutex<Option<String>>,
}

/// Why a login was refused, as the CONNACK says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Return code 4: unknown user or wrong password.
    BadUserNamePassword,
    /// Return code 5: no user name on a listener that wants one.
    NotAuthorized,
}

/// The identities of a board.
pub struct Policy {
    users: HashMap<String, User>,
    anonymous: Rules,
}

impl Policy {
    pub fn from_board(board: &Board) -> Result<Policy, PolicyError> {
        let mut users = HashMap::new();
        for user in &board.broker.users {
            check_hash(&user.name, &user.password_hash)?;
            let mut rules = Rules { publish: user.publish.clone(), subscribe: user.subscribe.clone() };
            rules.extend(gateway_rules(board, &user.name));
            let entry = User { hash: user.password_hash.clone(), rules, verified: Mutex::new(None) };
            users.insert(user.name.clone(), entry);
        }
        if let Some(dir) = &board.gateway.credentials_dir {
            for (name, rules) in installed_identities(board) {
                if users.contains_key(&name) {
                    // The board file's own entry wins.
                    continue;
                }
                let path = dir.join(format!("{name}.hash"));
                let hash = match std::fs::read_to_string(&path) {
                    Ok(hash) => hash.trim().to_owned(),
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                        tracing::warn!(
                            user = %name,
                            path = %path.display(),
                            "no password hash for this identity: it cannot log in (the deploy installer makes it, \
                             or run `broker gen-password --out {name}.password --hash-out {name}.hash` in that directory)"
                        );
                        continue;
                    }
                    Err(error) => return Err(PolicyError::HashFile { path, error: error.to_string() }),
                };
                check_hash(&name, &hash).map_err(|error| PolicyError::HashFile { path, error: error.to_string() })?;
                users.insert(name, User { hash, rules, verified: Mutex::new(None) });
            }
        }
        Ok(Policy { users, anonymous: Rules::default() })
    }

    /// The rules of a user whose password is right, or why the login is refused.
    pub fn login(&self, username: &str, password: &[u8]) -> Result<&Rules, Refusal> {
        let user = self.users.get(username).ok_or(Refusal::BadUserNamePassword)?;
        let mut verified = user.verified.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if verified.as_deref().map(str::as_bytes) == Some(password) {
            return Ok(&user.rules);
        }
        let hash = PasswordHash::new(&user.hash).map_err(|_| Refusal::BadUserNamePassword)?;
        Argon2::default().verify_password(password, &hash).map_err(|_| Refusal::BadUserNamePassword)?;
        *verified = std::str::from_utf8(password).ok().map(str::to_owned);
        Ok(&user.rules)
    }

    /// The rules of a user the operating system vouches for (a Unix socket peer), with no
    /// password to check; `None` for a user the board does not know.
    pub fn rules_of(&self, username: &str) -> Option<&Rules> {
        self.users.get(username).map(|user| &user.rules)
    }

    /// The rules of clients without a user name, where a listener admits them.
    pub fn anonymous(&self) -> &Rules {
        &self.anonymous
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use std::path::Path;

    use super::*;

    fn board(users: &str) -> Board {
        let text = format!(
            "[board]\nname = \"b\"\ntarget = \"x86_64-unknown-linux-gnu\"\n{users}\n\
             [[bus]]\nname = \"i2c1\"\nkind = \"i2c\"\nmock = true\n"
        );
        Board::parse(&text, Path::new("b.toml")).unwrap()
    }

    #[test]
    fn a_hashed_password_logs_in_and_a_wrong_one_does_not() {
        let hash = hash_password("secret").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        let policy = Policy::from_board(&board(&format!("[broker.users.app]\npassword_hash = \"{hash}\"\n"))).unwrap();
        assert!(policy.login("app", b"secret").is_ok());
        // Again, from the remembered password.
        assert!(policy.login("app", b"secret").is_ok());
        assert_eq!(policy.login("app", b"wrong").unwrap_err(), Refusal::BadUserNamePassword);
        assert_eq!(policy.login("nobody", b"secret").unwrap_err(), Refusal::BadUserNamePassword);
    }

    #[test]
    fn a_gateway_user_gets_its_rules_from_the_board() {
        let hash = hash_password("pw").unwrap();
        let policy =
            Policy::from_board(&board(&format!("[broker.users.i2c-gateway]\npassword_hash = \"{hash}\"\n"))).unwrap();
        let rules = policy.login("i2c-gateway", b"pw").unwrap().bind("b-i2c-gateway", Some("i2c-gateway")).unwrap();
        assert!(rules.may_publish("busgate/b/i2c/i2c1/x/state"));
        assert!(rules.may_publish("busgate/b/i2c-gateway/status"));
        assert!(!rules.may_publish("busgate/b/spi/spi0/x/set"));
        assert!(!rules.may_publish("busgate/b/i2c/i2c1/x/set"));
        assert!(rules.may_subscribe("busgate/b/i2c/+/+/set"));
        assert!(!rules.may_subscribe("#"));
    }

    #[test]
    fn the_installed_identities_come_from_the_credentials_directory() {
        let dir = std::env::temp_dir().join(format!("busgate-policy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("i2c-gateway.hash"), hash_password("gw").unwrap() + "\n").unwrap();
        std::fs::write(dir.join("deploy.hash"), hash_password("dp").unwrap()).unwrap();
        let text = format!(
            "[board]\nname = \"b\"\ntarget = \"x86_64-unknown-linux-gnu\"\n\
             [gateway]\ncredentials_dir = \"{}\"\n\
             [[bus]]\nname = \"i2c1\"\nkind = \"i2c\"\nmock = true\n\
             [[bus]]\nname = \"spi0\"\nkind = \"spi\"\nmock = true\n\
             [[device]]\nname = \"t\"\nbus = \"i2c1\"\ndriver = \"bme280\"\naddress = 0x76\n\
             [[device]]\nname = \"adc\"\nbus = \"spi0\"\ndriver = \"mcp3008\"\nchip_select = 0\n",
            dir.display()
        );
        let policy = Policy::from_board(&Board::parse(&text, Path::new("b.toml")).unwrap()).unwrap();
        let gateway = policy.login("i2c-gateway", b"gw").unwrap().bind("b-i2c-gateway", Some("i2c-gateway")).unwrap();
        assert!(gateway.may_publish("busgate/b/i2c/i2c1/t/state"));
        assert!(!gateway.may_publish("busgate/b/spi/spi0/adc/state"));
        assert!(gateway.may_subscribe("busgate/b/i2c/+/+/set"));
        assert_eq!(policy.login("i2c-gateway", b"dp").unwrap_err(), Refusal::BadUserNamePassword);
        let deploy = policy.login("deploy", b"dp").unwrap().bind("d", Some("deploy")).unwrap();
        assert!(deploy.may_subscribe("busgate/b/spi-gateway/status"));
        assert!(!deploy.may_subscribe("busgate/b/#"));
        assert!(!deploy.may_publish("busgate/b/spi-gateway/status"));
        // No spi-gateway.hash: that identity is missing, the rest still works.
        assert_eq!(policy.login("spi-gateway", b"gw").unwrap_err(), Refusal::BadUserNamePassword);

        std::fs::write(dir.join("spi-gateway.hash"), "not a hash").unwrap();
        let error = Policy::from_board(&Board::parse(&text, Path::new("b.toml")).unwrap()).err().unwrap().to_string();
        assert!(error.contains("spi-gateway.hash"), "{error}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn patterns_substitute_client_and_user() {
        let rules = Rules { publish: vec!["c/%c/#".into()], subscribe: vec!["u/%u/+".into()] };
        let bound = rules.bind("dev1", Some("ann")).unwrap();
        assert!(bound.may_publish("c/dev1/x"));
        assert!(!bound.may_publish("c/dev2/x"));
        assert!(bound.may_subscribe("u/ann/x"));
        assert!(!bound.may_subscribe("u/bob/x"));
        assert!(Rules::default().bind("x", None).is_none());
    }

    #[test]
    fn a_plain_password_in_the_board_file_is_refused() {
        let text = "[board]\nname = \"b\"\ntarget = \"x86_64-unknown-linux-gnu\"\n[broker.users.app]\npassword_hash = \"hunter2\"\n";
        let error = Board::parse(text, Path::new("b.toml")).unwrap_err();
        assert!(error.to_string().contains("never a password"), "{error}");
    }
}
