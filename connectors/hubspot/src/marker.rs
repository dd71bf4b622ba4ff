//! How a task carries the key of the action that made it: the body's last
//! line, `journeyd-action: <key>` (the contract's [`ActionKey::in_text`]).
//!
//! The key must be one search token (ASCII letters and digits) so that a
//! lost create can be found with `CONTAINS_TOKEN`; the marker is then
//! checked exactly here. HubSpot keeps a body written through the API as
//! sent, but a task edited in HubSpot's editor comes back as HTML (`<p>`,
//! `<br>`, `&nbsp;`), so reading tolerates both.

use journeyd_connector::ActionKey;

/// What starts a marker line, without the space that may be `&nbsp;`.
const MARKER: &str = "journeyd-action:";

/// Whether `key` can be carried as one search token.
pub(crate) fn is_token(key: &str) -> bool {
    !key.is_empty() && key.len() <= 100 && key.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The body a task is written with: `body` without any marker line it may
/// carry, then `key`'s marker line, so the body ends with exactly one.
pub(crate) fn with_marker(body: &str, key: &ActionKey) -> String {
    let text: Vec<&str> = body
        .lines()
        .filter(|line| !line.trim_start().starts_with(MARKER))
        .collect();
    key.in_text(text.join("\n").trim_end())
}

/// Every action key a task body carries on a marker line, wherever it is.
pub(crate) fn markers(body: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut rest = body;
    while let Some(at) = rest.find(MARKER) {
        rest = &rest[at + MARKER.len()..];
        let mut tail = rest;
        loop {
            let trimmed = tail.trim_start();
            match trimmed.strip_prefix("&nbsp;") {
                Some(after) => tail = after,
                None => {
                    tail = trimmed;
                    break;
                }
            }
        }
        let end = tail
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(tail.len());
        if end > 0 {
            keys.push(tail[..end].to_owned());
        }
    }
    keys
}

/// The key on the last line of a task body, plain or HTML: what makes a
/// task journeyd's own.
pub(crate) fn final_key(body: &str) -> Option<ActionKey> {
    ActionKey::from_text(&plain_text(body)).filter(|key| is_token(key.as_str()))
}

/// A body as text: HTML line breaks and paragraph ends become new lines,
/// other tags go, a non-breaking space becomes a space. Plain text passes
/// unchanged unless it holds something that looks like a tag.
fn plain_text(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('>') else {
            out.push_str(&rest[open..]);
            rest = "";
            break;
        };
        let tag = rest[open + 1..open + close]
            .trim()
            .trim_end_matches('/')
            .trim()
            .to_ascii_lowercase();
        if matches!(tag.as_str(), "br" | "/p" | "/div" | "/li") {
            out.push('\n');
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out.replace("&nbsp;", " ").replace('\u{a0}', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_ends_with_exactly_one_marker_line_of_its_key() {
        let key = ActionKey::new("3f2a9c00d1");
        let body = with_marker("Name the decision maker.", &key);
        assert_eq!(
            body,
            "Name the decision maker.\n\njourneyd-action: 3f2a9c00d1"
        );
        assert_eq!(with_marker(&body, &key), body, "a marked body keeps one");
        let other = ActionKey::new("77aa");
        assert_eq!(
            with_marker(&body, &other),
            "Name the decision maker.\n\njourneyd-action: 77aa",
            "a rewrite carries only the key it is given"
        );
        assert_eq!(with_marker("", &key), "journeyd-action: 3f2a9c00d1");
    }

    #[test]
    fn markers_are_found_exactly_in_plain_and_html_bodies() {
        assert_eq!(
            markers("Name them.\n\njourneyd-action: 3f2a9c00d1"),
            ["3f2a9c00d1"]
        );
        assert_eq!(
            markers("<p>Name them.</p><p>journeyd-action:&nbsp;3f2a9c00d1</p>"),
            ["3f2a9c00d1"]
        );
        assert!(markers("journeyd-action: ").is_empty());
        assert_eq!(markers("journeyd-action: 3f2a9c00d1x"), ["3f2a9c00d1x"]);
    }

    #[test]
    fn only_a_marker_on_the_last_line_makes_a_task_journeyds() {
        let key = Some(ActionKey::new("3f2a9c00d1"));
        assert_eq!(
            final_key("- fix the owner\n\njourneyd-action: 3f2a9c00d1\n"),
            key
        );
        assert_eq!(
            final_key("<p>- fix the owner</p><p>journeyd-action:&nbsp;3f2a9c00d1</p>"),
            key
        );
        assert_eq!(
            final_key("<div>fix<br/>journeyd-action: 3f2a9c00d1</div>"),
            key
        );
        assert_eq!(
            final_key("journeyd-action: 3f2a9c00d1\nthen a note an admin added"),
            None
        );
        assert_eq!(final_key("Call the customer back."), None);
        assert_eq!(final_key("journeyd-action: not a token"), None);
    }

    #[test]
    fn only_ascii_letters_and_digits_make_a_key_token() {
        assert!(is_token("3f2a9c00d1e84b7a9c00d1e84b7a9c00"));
        assert!(!is_token("3f2a-task"));
        assert!(!is_token(""));
    }
}
