//! The frame every page shares (head, navigation, footer), its stylesheet,
//! and the small pieces pages print the same way: severities, statuses,
//! times and owners.

use super::Viewer;
use crate::rules::Severity;
use crate::store::{OwnerDirectory, ViolationStatus};
use chrono::{DateTime, Utc};
use journeyd_connector::{ConnectorName, OwnerId};
use maud::{DOCTYPE, Markup, html};

/// The console's one stylesheet, served at `/static/console.css`.
pub(super) const STYLESHEET: &str = include_str!("console.css");
/// Its icon, served at `/static/favicon.svg`: named by every page, so a
/// browser does not ask for a `/favicon.ico` that is not there.
pub(super) const ICON: &str = include_str!("favicon.svg");

/// The pages in the navigation: path and title.
const NAVIGATION: [(&str, &str); 5] = [
    ("/", "Overview"),
    ("/violations", "Violations"),
    ("/owners", "Owners"),
    ("/journey", "Journey"),
    ("/runs", "Runs"),
];

thread_local! {
    /// Who the page being rendered on this thread is for: its frame names
    /// them, and offers to sign out one who signed in here.
    static ASKER: std::cell::RefCell<Option<Viewer>> = const { std::cell::RefCell::new(None) };
}

/// Renders with `viewer` as the asker of the pages `render` frames.
pub(super) fn as_asker<T>(viewer: Viewer, render: impl FnOnce() -> T) -> T {
    /// Forgets the asker however `render` ends, a panic included: the
    /// thread renders another's page next.
    struct Forget;
    impl Drop for Forget {
        fn drop(&mut self) {
            ASKER.with_borrow_mut(|asker| *asker = None);
        }
    }
    ASKER.with_borrow_mut(|asker| *asker = Some(viewer));
    let _forget = Forget;
    render()
}

/// A whole page: `title` in the tab and as its heading, `here` the path
/// of its navigation entry.
pub(super) fn frame(title: &str, here: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, html! {
                link rel="stylesheet" href="/static/console.css";
                link rel="icon" type="image/svg+xml" href="/static/favicon.svg";
            }))
            body {
                header.top {
                    a.brand href="/" { "journeyd" }
                    nav aria-label="Pages" {
                        @for (path, name) in NAVIGATION {
                            @if path == here {
                                a href=(path) aria-current="page" { (name) }
                            } @else {
                                a href=(path) { (name) }
                            }
                        }
                    }
                    @if let Some(asker) = ASKER.with_borrow(Clone::clone) {
                        span.asker {
                            span.muted { (asker.name) @if !asker.admin { " (viewer)" } }
                            @if asker.signed_in {
                                form.signout method="post" action="/logout" {
                                    button type="submit" { "Sign out" }
                                }
                            }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A page's head: `title` in the tab, and its `style` (a link to the
/// stylesheet, or the stylesheet itself).
fn head(title: &str, style: Markup) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · journeyd" }
            (style)
        }
    }
}

/// A page to keep as a file: the stylesheet inside it, no navigation,
/// and the time it was made.
pub(super) fn standalone(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, html! { style { (maud::PreEscaped(STYLESHEET)) } }))
            body {
                header.top { span.brand { "journeyd" } span.muted { "as of " (when(chrono::Utc::now())) } }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The page answered with a 404.
pub(super) fn missing(what: &str) -> Markup {
    frame(
        "Not found",
        "",
        html! { p { (what) "." } p { a href="/" { "Back to the overview" } } },
    )
}

/// The page answered when an action is refused: why, and that nothing
/// changed.
pub(super) fn refused(why: &str) -> Markup {
    frame(
        "Not done",
        "",
        html! { p.error { (why) } p { a href="/violations" { "Back to the log" } } },
    )
}

/// The page answered with a 500: what could not be read.
pub(super) fn failed(why: &str) -> Markup {
    frame(
        "Could not read the state file",
        "",
        html! { p.error { (why) } },
    )
}

pub(super) fn severity(severity: Severity) -> Markup {
    let name = severity.as_str();
    html! { span class={ "severity " (name) } { (name) } }
}

pub(super) fn status(status: ViolationStatus) -> Markup {
    let name = status.as_str();
    html! { span class={ "status " (name) } { (name) } }
}

/// A time as the admin reads it: date and minute, UTC.
pub(super) fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// An owner by name, the id beside it for a name the state file does not
/// hold, and flagged when the CRM says they are inactive.
pub(super) fn owner(
    owners: &OwnerDirectory,
    connector: &ConnectorName,
    id: Option<&OwnerId>,
) -> Markup {
    let Some(id) = id else {
        return html! { span.none { "no owner" } };
    };
    match owners.get(&(connector.clone(), id.clone())) {
        Some(owner) if owner.active => html! { span title=(id) { (owner.name) } },
        Some(owner) => html! {
            span title=(id) { (owner.name) } " " span.flag { "inactive" }
        },
        None => html! { span.unknown title="not among the CRM's owners" { (id) } },
    }
}
