//! `POST /$batch` (facts 2.4): a `multipart/mixed` body of
//! `application/http` parts and change sets (nested `multipart/mixed`
//! whose parts carry `Content-ID`), at most `batch_max` requests. Parts run
//! in order through the same handlers as plain requests; GET parts (outside
//! change sets) are answered like the plain GET, paged with a nextLink.
//! A change set is atomic: a failing part rolls the set's earlier parts
//! back, and the set is answered by that one error part. Without `Prefer:
//! odata.continue-on-error` the first failure stops the batch, which then
//! answers with that failure's status; with it the batch answers 200 with
//! every part's own status.
//!
//! Dataverse finishes a batch whose client has gone (facts 13): under the
//! knob `batch_part_delay` the router runs [`run`] in a task of its own,
//! and the parts here wait that long each, committing one by one.
//!
//! The reply is framed with CRLF as Dataverse frames it:
//! `--batchresponse_<guid>` parts, `changesetresponse_<guid>` for change
//! sets, each part `Content-Type: application/http`,
//! `Content-Transfer-Encoding: binary`, then a whole HTTP response.
//!
//! The embedded requests and the MIME part headers are parsed with
//! `httparse`; the multipart framing itself is split here.

use super::cell::Guid;
use super::config::Knobs;
use super::reply::{ApiError, Reply, execution_exceeded};
use super::router::{API_ROOT, ApiRequest, Shared, dispatch, dispatch_write, lock};
use super::write::Undo;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use std::collections::HashMap;
use std::time::Duration;

/// One request inside the batch.
#[derive(Debug)]
struct Part {
    content_id: Option<String>,
    method: Method,
    target: String,
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Debug)]
enum Item {
    Single(Part),
    ChangeSet(Vec<Part>),
}

/// One answer inside the batch reply.
enum Answer {
    Single(Option<String>, Reply),
    ChangeSet(Vec<(Option<String>, Reply)>),
}

/// The `boundary` parameter of a `multipart/mixed` content type.
fn boundary(content_type: &str) -> Option<String> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/mixed") {
        return None;
    }
    params.split(';').find_map(|p| {
        let (name, value) = p.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').to_owned())
    })
}

/// The bodies of the parts between `--boundary` lines (each without the
/// line break before the next delimiter).
fn split_parts<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<&'a [u8]>, ApiError> {
    let delimiter = format!("--{boundary}");
    let d = delimiter.as_bytes();
    // Delimiters start a line.
    let mut starts = Vec::new();
    let mut i = 0;
    while i + d.len() <= body.len() {
        if &body[i..i + d.len()] == d && (i == 0 || body[i - 1] == b'\n') {
            starts.push(i);
            i += d.len();
        } else {
            i += 1;
        }
    }
    let bad =
        || ApiError::bad_request("The batch request body is not valid multipart/mixed content.");
    let mut parts = Vec::new();
    let mut closed = false;
    for (n, &start) in starts.iter().enumerate() {
        let after = start + d.len();
        if body[after..].starts_with(b"--") {
            closed = true;
            break;
        }
        let line_end = body[after..]
            .iter()
            .position(|b| *b == b'\n')
            .ok_or_else(bad)?
            + after
            + 1;
        let end = starts.get(n + 1).copied().ok_or_else(bad)?;
        let mut content = &body[line_end.min(end)..end];
        // The line break before a delimiter belongs to the delimiter.
        if content.ends_with(b"\r\n") {
            content = &content[..content.len() - 2];
        } else if content.ends_with(b"\n") {
            content = &content[..content.len() - 1];
        }
        parts.push(content);
    }
    if !closed {
        return Err(bad());
    }
    Ok(parts)
}

/// A MIME part: its headers and the rest.
fn part_headers(part: &[u8]) -> Result<(HeaderMap, &[u8]), ApiError> {
    let mut slots = [httparse::EMPTY_HEADER; 32];
    match httparse::parse_headers(part, &mut slots) {
        Ok(httparse::Status::Complete((offset, parsed))) => Ok((to_map(parsed), &part[offset..])),
        _ => Err(ApiError::bad_request("A batch part has malformed headers.")),
    }
}

fn to_map(parsed: &[httparse::Header<'_>]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for h in parsed {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_bytes(h.value),
        ) {
            map.append(name, value);
        }
    }
    map
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// An `application/http` part: the embedded request.
fn http_part(part: &[u8], content_id: Option<String>) -> Result<Part, ApiError> {
    let (mime, rest) = part_headers(part)?;
    let content_type = header_text(&mime, "content-type").unwrap_or_default();
    if !content_type
        .to_ascii_lowercase()
        .starts_with("application/http")
    {
        return Err(ApiError::bad_request(format!(
            "A batch part has the content type '{content_type}', not application/http."
        )));
    }
    let content_id = header_text(&mime, "content-id")
        .map(str::to_owned)
        .or(content_id);
    // A body-less request's blank line belongs to the delimiter after it;
    // put it back before parsing.
    let mut buffer = rest.to_vec();
    if !buffer.windows(4).any(|w| w == b"\r\n\r\n") && !buffer.windows(2).any(|w| w == b"\n\n") {
        buffer.extend_from_slice(b"\r\n");
    }
    let mut slots = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut slots);
    let offset = match request.parse(&buffer) {
        Ok(httparse::Status::Complete(offset)) => offset,
        _ => {
            return Err(ApiError::bad_request(
                "A batch part holds a malformed HTTP request.",
            ));
        }
    };
    let method = request
        .method
        .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
        .ok_or_else(|| ApiError::bad_request("A batch part has no method."))?;
    let target = request.path.unwrap_or_default().to_owned();
    let headers = to_map(request.headers);
    let content_id = content_id.or_else(|| header_text(&headers, "content-id").map(str::to_owned));
    let body = buffer[offset..].trim_ascii().to_vec();
    Ok(Part {
        content_id,
        method,
        target,
        headers,
        body: Bytes::from(body),
    })
}

fn parse(body: &[u8], content_type: &str) -> Result<Vec<Item>, ApiError> {
    let boundary = boundary(content_type).ok_or_else(|| {
        ApiError::bad_request("The batch request must be multipart/mixed with a boundary.")
    })?;
    let mut items = Vec::new();
    for part in split_parts(body, &boundary)? {
        let (mime, rest) = part_headers(part)?;
        let content_type = header_text(&mime, "content-type").unwrap_or_default();
        if let Some(inner) = boundary_of_changeset(content_type) {
            let mut set = Vec::new();
            for sub in split_parts(rest, &inner)? {
                let part = http_part(sub, None)?;
                if part.method == Method::GET {
                    return Err(ApiError::bad_request(
                        "A GET request cannot be part of a change set.",
                    ));
                }
                set.push(part);
            }
            items.push(Item::ChangeSet(set));
        } else {
            items.push(Item::Single(http_part(part, None)?));
        }
    }
    Ok(items)
}

fn boundary_of_changeset(content_type: &str) -> Option<String> {
    content_type
        .to_ascii_lowercase()
        .starts_with("multipart/mixed")
        .then(|| boundary(content_type))
        .flatten()
}

/// A part's target as a data request: an absolute URL, a path from the
/// server root, or a path relative to the API root; `$n` names a row a
/// change set created earlier.
fn request_of(
    shared: &Shared,
    part: &Part,
    created: &HashMap<String, String>,
) -> Result<ApiRequest, ApiError> {
    let mut target = part.target.clone();
    if let Some(id) = target.strip_prefix('$')
        && let Some(path) = created.get(id)
    {
        target.clone_from(path);
    }
    let base = shared.base();
    let target = target.strip_prefix(&base).unwrap_or(&target).to_owned();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), q.to_owned()),
        None => (target, String::new()),
    };
    let path = path
        .strip_prefix(API_ROOT)
        .or_else(|| path.strip_prefix('/'))
        .unwrap_or(&path)
        .to_owned();
    if path == "$batch" {
        return Err(ApiError::bad_request(
            "A batch cannot be nested in a batch.",
        ));
    }
    let body = resolve_references(&part.body, created);
    Ok(ApiRequest {
        method: part.method.clone(),
        path,
        query,
        headers: part.headers.clone(),
        body,
    })
}

/// Replaces `"$n"` bind values with the row change-set part n created.
fn resolve_references(body: &Bytes, created: &HashMap<String, String>) -> Bytes {
    if created.is_empty() {
        return body.clone();
    }
    let Ok(serde_json::Value::Object(mut fields)) =
        serde_json::from_slice::<serde_json::Value>(body)
    else {
        return body.clone();
    };
    for (name, value) in fields.iter_mut() {
        if name.ends_with("@odata.bind")
            && let Some(id) = value.as_str().and_then(|s| s.strip_prefix('$'))
            && let Some(path) = created.get(id)
        {
            *value = serde_json::Value::String(format!("/{path}"));
        }
    }
    Bytes::from(serde_json::Value::Object(fields).to_string())
}

/// A part refused by `fail_batch_parts`: service protection stopped it
/// before it ran (the execution-time limit, which a batch's parts count
/// against in full, facts 2.5); whether Dataverse refuses single parts
/// this way is (?).
fn refused_part(knobs: &Knobs) -> Reply {
    let mut error = execution_exceeded(
        knobs.execution_ms_per_window.unwrap_or(1_200_000),
        knobs.window.as_secs(),
    );
    error.retry_after = Some(1);
    error.reply()
}

/// The answer `error_batch_parts` gives a part it has carried out: a
/// server error, so the client cannot tell that the write was made (?).
fn failed_after_writing() -> Reply {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "0x80044150",
        "Generic SQL error.",
    )
    .reply()
}

/// A batch's answer, and whether the batch held a write.
pub(crate) struct Ran {
    pub reply: Reply,
    pub wrote: bool,
}

/// Answers a `$batch`, waiting `pace` before each part (or change set).
pub(crate) async fn run(shared: &Shared, headers: &HeaderMap, body: &Bytes, pace: Duration) -> Ran {
    match run_batch(shared, headers, body, pace).await {
        Ok(ran) => ran,
        Err(error) => Ran {
            reply: error.reply(),
            wrote: false,
        },
    }
}

async fn run_batch(
    shared: &Shared,
    headers: &HeaderMap,
    body: &Bytes,
    pace: Duration,
) -> Result<Ran, ApiError> {
    let content_type = header_text(headers, "content-type").unwrap_or_default();
    let items = parse(body, content_type)?;
    let knobs = shared.knobs();
    let requests: usize = items
        .iter()
        .map(|item| match item {
            Item::Single(_) => 1,
            Item::ChangeSet(parts) => parts.len(),
        })
        .sum();
    if requests > knobs.batch_max {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "0x8005f103",
            format!(
                "The number of requests in the batch exceeded the limit of {}.",
                knobs.batch_max
            ),
        ));
    }
    let wrote = items.iter().any(|item| match item {
        Item::Single(part) => part.method != Method::GET,
        Item::ChangeSet(_) => true,
    });
    // A batch counts as one request, but every part's execution time.
    lock(&shared.window).charge_more(knobs.request_cost_ms * requests.saturating_sub(1) as u64);
    let continue_on_error = super::router::Prefer::from_headers(headers).continue_on_error;
    let mut refusals = std::mem::take(&mut *lock(&shared.fail_batch_parts));
    let mut errors = std::mem::take(&mut *lock(&shared.error_batch_parts));
    let mut answers = Vec::new();
    let mut status = StatusCode::OK;
    for item in items {
        if !pace.is_zero() {
            tokio::time::sleep(pace).await;
        }
        let (answer, failed) = match item {
            Item::Single(part) => {
                let write = part.method != Method::GET;
                let reply = if write && refusals > 0 {
                    refusals -= 1;
                    refused_part(&knobs)
                } else {
                    let reply = match request_of(shared, &part, &HashMap::new()) {
                        Ok(request) => dispatch(shared, &request),
                        Err(error) => error.reply(),
                    };
                    if write && errors > 0 {
                        errors -= 1;
                        failed_after_writing()
                    } else {
                        reply
                    }
                };
                let failed = (!reply.is_success()).then_some(reply.status);
                (Answer::Single(part.content_id, reply), failed)
            }
            Item::ChangeSet(parts) => change_set(shared, parts, &mut refusals, &knobs),
        };
        answers.push(answer);
        if let Some(failed) = failed
            && !continue_on_error
        {
            status = failed;
            break;
        }
    }
    let boundary = format!("batchresponse_{}", Guid::random(&mut fastrand::Rng::new()));
    let mut reply = Reply::empty(status);
    reply.content_type = Some(format!("multipart/mixed; boundary={boundary}"));
    reply.body = render(&boundary, &answers);
    Ok(Ran { reply, wrote })
}

/// Runs a change set under one write lock; on the first failure undoes
/// the set's earlier parts and answers with that failure alone.
fn change_set(
    shared: &Shared,
    parts: Vec<Part>,
    refusals: &mut usize,
    knobs: &Knobs,
) -> (Answer, Option<StatusCode>) {
    let mut store = shared.store_mut();
    let mut undo: Vec<Undo> = Vec::new();
    let mut created: HashMap<String, String> = HashMap::new();
    let mut replies = Vec::new();
    let root = shared.root();
    for part in parts {
        let reply = if *refusals > 0 {
            *refusals -= 1;
            refused_part(knobs)
        } else {
            match request_of(shared, &part, &created) {
                Ok(request) => dispatch_write(shared, &mut store, &request, &mut undo)
                    .unwrap_or_else(|error| error.reply()),
                Err(error) => error.reply(),
            }
        };
        if !reply.is_success() {
            for (table, key, before) in undo.into_iter().rev() {
                store.restore(table, &key, before);
            }
            let status = reply.status;
            return (Answer::Single(part.content_id, reply), Some(status));
        }
        if let Some(id) = &part.content_id
            && let Some((_, entity)) = reply
                .headers
                .iter()
                .find(|(n, _)| n.as_str() == "odata-entityid")
        {
            created.insert(
                id.clone(),
                entity.strip_prefix(&root).unwrap_or(entity).to_owned(),
            );
        }
        replies.push((part.content_id, reply));
    }
    (Answer::ChangeSet(replies), None)
}

fn reason(status: StatusCode) -> &'static str {
    status.canonical_reason().unwrap_or("")
}

/// One embedded HTTP response part, CRLF-framed.
fn write_part(out: &mut String, boundary: &str, content_id: Option<&str>, reply: &Reply) {
    out.push_str(&format!("--{boundary}\r\n"));
    out.push_str("Content-Type: application/http\r\n");
    out.push_str("Content-Transfer-Encoding: binary\r\n");
    if let Some(id) = content_id {
        out.push_str(&format!("Content-ID: {id}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(&format!(
        "HTTP/1.1 {} {}\r\n",
        reply.status.as_u16(),
        reason(reply.status)
    ));
    if let Some(content_type) = &reply.content_type {
        out.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    out.push_str("OData-Version: 4.0\r\n");
    for (name, value) in &reply.headers {
        out.push_str(&format!("{}: {value}\r\n", canonical(name)));
    }
    out.push_str("\r\n");
    out.push_str(&reply.body);
    out.push_str("\r\n");
}

/// Header names as Dataverse capitalises them.
fn canonical(name: &HeaderName) -> String {
    match name.as_str() {
        "odata-entityid" => "OData-EntityId".to_owned(),
        "preference-applied" => "Preference-Applied".to_owned(),
        other => other
            .split('-')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("-"),
    }
}

fn render(boundary: &str, answers: &[Answer]) -> String {
    let mut out = String::new();
    for answer in answers {
        match answer {
            Answer::Single(id, reply) => write_part(&mut out, boundary, id.as_deref(), reply),
            Answer::ChangeSet(replies) => {
                let inner = format!(
                    "changesetresponse_{}",
                    Guid::random(&mut fastrand::Rng::new())
                );
                out.push_str(&format!("--{boundary}\r\n"));
                out.push_str(&format!(
                    "Content-Type: multipart/mixed; boundary={inner}\r\n\r\n"
                ));
                for (id, reply) in replies {
                    write_part(&mut out, &inner, id.as_deref(), reply);
                }
                out.push_str(&format!("--{inner}--\r\n"));
            }
        }
    }
    out.push_str(&format!("--{boundary}--\r\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_body_splits_into_single_parts_and_change_sets() {
        let body = "--batch_1\r\n\
Content-Type: multipart/mixed; boundary=changeset_2\r\n\r\n\
--changeset_2\r\n\
Content-Type: application/http\r\n\
Content-Transfer-Encoding: binary\r\n\
Content-ID: 1\r\n\r\n\
POST /api/data/v9.2/tasks HTTP/1.1\r\n\
Content-Type: application/json; type=entry\r\n\r\n\
{\"subject\":\"a\"}\r\n\
--changeset_2--\r\n\
--batch_1\r\n\
Content-Type: application/http\r\n\
Content-Transfer-Encoding: binary\r\n\r\n\
GET /api/data/v9.2/tasks?$select=subject HTTP/1.1\r\n\
Accept: application/json\r\n\r\n\
--batch_1--\r\n";
        let items = parse(body.as_bytes(), "multipart/mixed; boundary=\"batch_1\"").unwrap();
        assert_eq!(items.len(), 2);
        let Item::ChangeSet(set) = &items[0] else {
            panic!("a change set")
        };
        assert_eq!(set[0].content_id.as_deref(), Some("1"));
        assert_eq!(set[0].method, Method::POST);
        assert_eq!(&set[0].body[..], b"{\"subject\":\"a\"}");
        let Item::Single(get) = &items[1] else {
            panic!("a single part")
        };
        assert_eq!(get.target, "/api/data/v9.2/tasks?$select=subject");
        assert!(get.body.is_empty());
    }

    #[test]
    fn an_unterminated_batch_is_refused() {
        let body = "--batch_1\r\nContent-Type: application/http\r\n\r\nGET /x HTTP/1.1\r\n\r\n";
        assert!(parse(body.as_bytes(), "multipart/mixed; boundary=batch_1").is_err());
    }
}
