//! `docs/mqtt.md` embeds the topic table generated from `TOPICS`, so the docs cannot drift
//! from the code. After changing the table, regenerate the docs section with:
//!
//! ```sh
//! SORTIE_BLESS=1 cargo test -p sortie-shared --test docs
//! ```

use std::path::PathBuf;
use std::{env, fs};

use sortie_shared::{markdown_table, MAX_ENVELOPE_BYTES, PROTOCOL_VERSION};

const BEGIN: &str = "<!-- topic-table:begin";
const END: &str = "<!-- topic-table:end -->";

fn doc_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/mqtt.md")
}

/// The document split around the generated table: (before and marker line, table, end marker
/// and after).
fn split(doc: &str) -> (&str, &str, &str) {
    let begin = doc.find(BEGIN).expect("docs/mqtt.md has the begin marker");
    let table_start = begin + doc[begin..].find('\n').expect("marker line ends") + 1;
    let end = doc.find(END).expect("docs/mqtt.md has the end marker");
    (&doc[..table_start], &doc[table_start..end], &doc[end..])
}

#[test]
fn docs_topic_table_matches_the_code() {
    let path = doc_path();
    let doc = fs::read_to_string(&path).expect("docs/mqtt.md exists");
    let (before, table, after) = split(&doc);
    let expected = markdown_table();
    if env::var("SORTIE_BLESS").is_ok_and(|v| v == "1") {
        fs::write(&path, format!("{before}{expected}{after}")).unwrap();
        return;
    }
    assert_eq!(
        table, expected,
        "docs/mqtt.md's topic table is stale; run \
         `SORTIE_BLESS=1 cargo test -p sortie-shared --test docs`"
    );
}

#[test]
fn docs_state_the_current_constants() {
    let doc = fs::read_to_string(doc_path()).unwrap();
    assert!(doc.contains(&format!("`PROTOCOL_VERSION` = {PROTOCOL_VERSION}")));
    assert_eq!(MAX_ENVELOPE_BYTES, 262_144);
    assert!(doc.contains("262 144 bytes"));
}
