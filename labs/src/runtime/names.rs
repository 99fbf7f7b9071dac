//! Names for containers started without `--name`, in docker's style: an adjective and
//! the surname of a scientist or engineer, `ADJECTIVE_SURNAME` (`brave_hopper`). The
//! lists are mini's own; a name already taken gets a digit, as docker does.

use rand::Rng;

const ADJECTIVES: &[&str] = &[
    "agile", "amazing", "bold", "brave", "bright", "busy", "calm", "careful", "charming", "cheerful", "clever", "cool",
    "curious", "daring", "dazzling", "eager", "earnest", "elastic", "epic", "fair", "fervent", "festive", "fluent",
    "focused", "friendly", "gallant", "gentle", "gifted", "happy", "hardy", "honest", "humble", "jolly", "keen",
    "kind", "lively", "loyal", "lucid", "merry", "mighty", "modest", "nimble", "noble", "patient", "peaceful",
    "plucky", "polite", "proud", "quick", "quiet", "rapid", "ready", "relaxed", "robust", "serene", "sharp", "sincere",
    "smart", "snappy", "steady", "sturdy", "swift", "tender", "thirsty", "tidy", "trusty", "upbeat", "vibrant",
    "vigilant", "vivid", "warm", "wise", "witty", "zealous",
];

const SURNAMES: &[&str] = &[
    "agnesi",
    "allen",
    "babbage",
    "backus",
    "bardeen",
    "bartik",
    "bell",
    "berners",
    "bohr",
    "boole",
    "borg",
    "cerf",
    "clarke",
    "codd",
    "conway",
    "curie",
    "darwin",
    "dijkstra",
    "einstein",
    "euler",
    "faraday",
    "fermat",
    "fermi",
    "feynman",
    "franklin",
    "galileo",
    "gauss",
    "germain",
    "goldberg",
    "goodall",
    "hamilton",
    "hawking",
    "hertz",
    "hodgkin",
    "hopper",
    "hypatia",
    "jackson",
    "johnson",
    "kepler",
    "khorana",
    "knuth",
    "kowalevski",
    "lamarr",
    "lamport",
    "leakey",
    "liskov",
    "lovelace",
    "maxwell",
    "mayer",
    "mccarthy",
    "meitner",
    "mendel",
    "minsky",
    "morse",
    "newton",
    "nobel",
    "noether",
    "pascal",
    "pasteur",
    "perlman",
    "planck",
    "raman",
    "ritchie",
    "saha",
    "sammet",
    "shannon",
    "sinoussi",
    "tesla",
    "thompson",
    "torvalds",
    "turing",
    "volta",
    "wiles",
    "wing",
    "wozniak",
    "wright",
    "yalow",
    "yonath",
];

/// A random `adjective_surname`; `taken` says whether a name is in use already.
pub fn random_name(taken: impl Fn(&str) -> bool) -> String {
    let mut rng = rand::rng();
    for attempt in 0..100 {
        let a = ADJECTIVES[rng.random_range(0..ADJECTIVES.len())];
        let s = SURNAMES[rng.random_range(0..SURNAMES.len())];
        let name = if attempt < 10 { format!("{a}_{s}") } else { format!("{a}_{s}{}", rng.random_range(0..10)) };
        if !taken(&name) {
            return name;
        }
    }
    format!("mini_{}", rng.random_range(0..u32::MAX))
}

/// A new container ID: 32 random bytes, in hex.
pub fn new_id() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Whether `name` is a valid container name: docker's `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid_name(name: &str) -> bool {
    let mut c = name.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphanumeric())
        && name.len() >= 2
        && c.all(|x| x.is_ascii_alphanumeric() || "_.-".contains(x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_look_like_dockers_and_avoid_taken_ones() {
        let n = random_name(|_| false);
        let (a, s) = n.split_once('_').unwrap();
        assert!(ADJECTIVES.contains(&a) && SURNAMES.contains(&s), "{n}");
        let first = random_name(|_| false);
        let other = random_name(|x| x == first);
        assert_ne!(first, other);
    }

    #[test]
    fn ids_are_64_hex_digits() {
        let id = new_id();
        assert_eq!(id.len(), 64);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn name_rules() {
        assert!(valid_name("c1") && valid_name("my-alpine_container.2"));
        assert!(!valid_name("a") && !valid_name("_x") && !valid_name("a/b") && !valid_name("a b"));
    }
}
