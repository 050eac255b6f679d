//! What every bench of this crate shares.

/// Replaces the text between `<!-- NAME:begin -->` and `<!-- NAME:end -->`
/// in `docs/benchmarks.md` with `body` (appends the section, with the
/// markers, when they are absent).
pub fn write_section(name: &str, body: &str) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/benchmarks.md");
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let (begin, end) = (
        format!("<!-- {name}:begin -->"),
        format!("<!-- {name}:end -->"),
    );
    let new = match (text.find(&begin), text.find(&end)) {
        (Some(b), Some(e)) if b < e => format!("{}{begin}\n{body}{}", &text[..b], &text[e..]),
        _ => format!("{text}\n{begin}\n{body}{end}\n"),
    };
    if let Err(e) = std::fs::write(path, new) {
        eprintln!("cannot write {path}: {e}");
    } else {
        println!("figures written to docs/benchmarks.md");
    }
}
