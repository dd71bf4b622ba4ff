//! The `$batch` body (facts 2.4): `multipart/mixed`, CRLF line ends, one
//! `application/http` part per request, each a raw HTTP request; and its
//! answer, read part by part (a change set's answer nested as its own
//! `multipart/mixed`), each part a raw HTTP response.
//!
//! No part's content can hold a boundary line: request bodies are JSON,
//! whose strings carry line breaks escaped, and URLs are percent-encoded,
//! so a line can only start with `--batch_` where this module puts one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// One request of a batch.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Request {
    pub(crate) method: &'static str,
    /// The absolute URL (under the API root), query percent-encoded.
    pub(crate) url: String,
    pub(crate) headers: Vec<(&'static str, String)>,
    /// A JSON body, sent as `application/json; type=entry`.
    pub(crate) json: Option<serde_json::Value>,
}

/// One part of a batch's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    /// The `Content-ID` of the MIME part, where the server echoed one.
    pub(crate) content_id: Option<String>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl Answer {
    /// A header of the part's HTTP response, by name in any case. The
    /// client needs none: every write's id is known before it is sent.
    #[cfg(test)]
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// A boundary no other batch of this process shares.
pub(crate) fn new_boundary() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("batch_{nanos:x}{n:04x}")
}

/// The `Content-Type` of a batch with `boundary`.
pub(crate) fn content_type(boundary: &str) -> String {
    format!("multipart/mixed; boundary=\"{boundary}\"")
}

/// The body of a batch of `requests`, each a top-level part; a write's
/// part carries `Content-ID` = its position, from 1.
pub(crate) fn build(boundary: &str, requests: &[Request]) -> String {
    let mut out = String::new();
    for (n, request) in requests.iter().enumerate() {
        out.push_str(&format!("--{boundary}\r\n"));
        out.push_str("Content-Type: application/http\r\n");
        out.push_str("Content-Transfer-Encoding: binary\r\n");
        if request.method != "GET" {
            out.push_str(&format!("Content-ID: {}\r\n", n + 1));
        }
        out.push_str("\r\n");
        out.push_str(&format!("{} {} HTTP/1.1\r\n", request.method, request.url));
        for (name, value) in &request.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        if request.json.is_some() {
            out.push_str("Content-Type: application/json; type=entry\r\n");
        }
        // The empty line that ends the request's headers, its body, and
        // the line break that belongs to the next delimiter (RFC 2046).
        out.push_str("\r\n");
        if let Some(json) = &request.json {
            out.push_str(&json.to_string());
        }
        out.push_str("\r\n");
    }
    out.push_str(&format!("--{boundary}--\r\n"));
    out
}

/// The `boundary` parameter of a `multipart/mixed` content type.
pub(crate) fn boundary_of(content_type: &str) -> Option<String> {
    let mut params = content_type.split(';');
    let kind = params.next()?.trim();
    if !kind.eq_ignore_ascii_case("multipart/mixed") {
        return None;
    }
    params.find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').to_owned())
            .filter(|boundary| !boundary.is_empty())
    })
}

/// Every part of a batch's answer, in order, change sets' parts in line.
pub(crate) fn parse(content_type: &str, body: &[u8]) -> Result<Vec<Answer>, String> {
    let boundary = boundary_of(content_type)
        .ok_or_else(|| "the batch answer is not multipart/mixed with a boundary".to_owned())?;
    let text = String::from_utf8_lossy(body);
    let mut answers = Vec::new();
    parse_into(&boundary, &text, &mut answers, 0)?;
    Ok(answers)
}

fn parse_into(
    boundary: &str,
    text: &str,
    answers: &mut Vec<Answer>,
    depth: usize,
) -> Result<(), String> {
    if depth > 1 {
        return Err("a change set is nested in a change set".into());
    }
    let delimiter = format!("--{boundary}");
    // Delimiters count only at the start of a line.
    let starts: Vec<usize> = text
        .match_indices(&delimiter)
        .map(|(at, _)| at)
        .filter(|&at| at == 0 || text[..at].ends_with('\n'))
        .collect();
    let mut closed = false;
    for (i, &start) in starts.iter().enumerate() {
        let after = &text[start + delimiter.len()..];
        if after.starts_with("--") {
            closed = true;
            break;
        }
        let end = starts.get(i + 1).map_or(text.len(), |&next| next);
        let part = &text[start + delimiter.len()..end];
        let part = strip_line_break_start(part);
        // The line break before the next delimiter belongs to it.
        let part = part
            .strip_suffix("\r\n")
            .or_else(|| part.strip_suffix('\n'))
            .unwrap_or(part);
        let (head, content) = split_head(part);
        let headers = header_lines(head);
        let find = |name: &str| {
            headers
                .iter()
                .find(|(known, _)| known.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.clone())
        };
        let kind = find("content-type").unwrap_or_default();
        if let Some(inner) = boundary_of(&kind) {
            parse_into(&inner, content, answers, depth + 1)?;
            continue;
        }
        let mut answer = http_response(content)?;
        answer.content_id = find("content-id");
        answers.push(answer);
    }
    if !closed {
        return Err(format!("the multipart body has no closing --{boundary}--"));
    }
    Ok(())
}

fn strip_line_break_start(text: &str) -> &str {
    text.strip_prefix("\r\n")
        .or_else(|| text.strip_prefix('\n'))
        .unwrap_or(text)
}

/// Splits at the first empty line: (header lines, the rest).
fn split_head(text: &str) -> (&str, &str) {
    let crlf = text.find("\r\n\r\n").map(|at| (at, 4));
    let lf = text.find("\n\n").map(|at| (at, 2));
    let first = match (crlf, lf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    };
    match first {
        Some((at, len)) => (&text[..at], &text[at + len..]),
        // Headers only (or an empty head: the text starts with the break).
        None if text.starts_with("\r\n") => ("", &text[2..]),
        None => (text, ""),
    }
}

fn header_lines(head: &str) -> Vec<(String, String)> {
    head.lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            Some((name.trim().to_owned(), value.trim().to_owned()))
        })
        .collect()
}

/// `HTTP/1.1 204 No Content`, headers, an empty line, the body.
fn http_response(text: &str) -> Result<Answer, String> {
    let (status_line, rest) = match text.split_once('\n') {
        Some((line, rest)) => (line.trim_end_matches('\r'), rest),
        None => (text.trim_end_matches('\r'), ""),
    };
    let status = status_line
        .strip_prefix("HTTP/")
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| "a batch part is not an http response".to_owned())?;
    let (head, body) = if rest.starts_with("\r\n") || rest.starts_with('\n') {
        ("", strip_line_break_start(rest))
    } else {
        split_head(rest)
    };
    Ok(Answer {
        status,
        content_id: None,
        headers: header_lines(head),
        body: body.trim_end_matches(['\r', '\n']).to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_batch_is_framed_with_crlf_and_each_write_carries_its_content_id() {
        let requests = [
            Request {
                method: "GET",
                url: "https://o/api/data/v9.2/tasks?$select=subject".into(),
                headers: vec![],
                json: None,
            },
            Request {
                method: "PATCH",
                url: "https://o/api/data/v9.2/tasks(a1b2c3d4-0000-4000-8000-000000000001)".into(),
                headers: vec![("If-Match", "*".into())],
                json: Some(json!({"statecode": 1})),
            },
        ];
        let body = build("batch_x", &requests);
        assert_eq!(
            body,
            "--batch_x\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n\
             GET https://o/api/data/v9.2/tasks?$select=subject HTTP/1.1\r\n\r\n\r\n\
             --batch_x\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 2\r\n\r\n\
             PATCH https://o/api/data/v9.2/tasks(a1b2c3d4-0000-4000-8000-000000000001) HTTP/1.1\r\n\
             If-Match: *\r\nContent-Type: application/json; type=entry\r\n\r\n{\"statecode\":1}\r\n\
             --batch_x--\r\n"
        );
        assert!(!body.replace("\r\n", "").contains('\n'), "bare LF");
        assert_eq!(
            boundary_of(&content_type("batch_x")).as_deref(),
            Some("batch_x")
        );
    }

    #[test]
    fn a_line_break_in_a_value_cannot_start_a_boundary_line() {
        let body = build(
            "batch_x",
            &[Request {
                method: "POST",
                url: "https://o/api/data/v9.2/tasks".into(),
                headers: vec![],
                json: Some(json!({"subject": "a\r\n--batch_x--\r\nb"})),
            }],
        );
        assert_eq!(body.matches("\r\n--batch_x").count(), 1);
    }

    const ANSWER: &str = "--batchresponse_1\r\n\
Content-Type: application/http\r\n\
Content-Transfer-Encoding: binary\r\n\
Content-ID: 1\r\n\
\r\n\
HTTP/1.1 204 No Content\r\n\
OData-Version: 4.0\r\n\
OData-EntityId: https://o/api/data/v9.2/tasks(a1b2c3d4-0000-4000-8000-000000000001)\r\n\
\r\n\
\r\n\
--batchresponse_1\r\n\
Content-Type: multipart/mixed; boundary=changesetresponse_2\r\n\
\r\n\
--changesetresponse_2\r\n\
Content-Type: application/http\r\n\
Content-Transfer-Encoding: binary\r\n\
Content-ID: 2\r\n\
\r\n\
HTTP/1.1 400 Bad Request\r\n\
Content-Type: application/json; odata.metadata=minimal\r\n\
OData-Version: 4.0\r\n\
\r\n\
{\"error\":{\"code\":\"0x80044331\",\"message\":\"A validation error occurred.\"}}\r\n\
--changesetresponse_2--\r\n\
--batchresponse_1\r\n\
Content-Type: application/http\r\n\
Content-Transfer-Encoding: binary\r\n\
\r\n\
HTTP/1.1 200 OK\r\n\
Content-Type: application/json\r\n\
\r\n\
{\"value\":[]}\r\n\
--batchresponse_1--\r\n";

    #[test]
    fn an_answer_is_read_part_by_part_change_sets_included() {
        let answers = parse(
            "multipart/mixed; boundary=batchresponse_1",
            ANSWER.as_bytes(),
        )
        .unwrap();
        assert_eq!(
            answers.iter().map(|a| a.status).collect::<Vec<_>>(),
            [204, 400, 200]
        );
        assert_eq!(answers[0].content_id.as_deref(), Some("1"));
        assert_eq!(
            answers[0].header("odata-entityid"),
            Some("https://o/api/data/v9.2/tasks(a1b2c3d4-0000-4000-8000-000000000001)")
        );
        assert_eq!(answers[0].body, "");
        assert_eq!(answers[1].content_id.as_deref(), Some("2"));
        assert!(answers[1].body.contains("0x80044331"));
        assert_eq!(answers[2].body, "{\"value\":[]}");
    }

    #[test]
    fn an_answer_with_bare_line_feeds_reads_the_same() {
        let lf = ANSWER.replace("\r\n", "\n");
        let answers = parse(
            "multipart/mixed; boundary=\"batchresponse_1\"",
            lf.as_bytes(),
        )
        .unwrap();
        assert_eq!(
            answers.iter().map(|a| a.status).collect::<Vec<_>>(),
            [204, 400, 200]
        );
    }

    #[test]
    fn an_unclosed_or_unframed_answer_is_refused() {
        let cut = &ANSWER[..ANSWER.len() - "--batchresponse_1--\r\n".len()];
        assert!(parse("multipart/mixed; boundary=batchresponse_1", cut.as_bytes()).is_err());
        assert!(parse("application/json", b"{}").is_err());
        let garbage = "--b\r\nContent-Type: application/http\r\n\r\nnot http\r\n--b--\r\n";
        assert!(parse("multipart/mixed; boundary=b", garbage.as_bytes()).is_err());
    }
}
