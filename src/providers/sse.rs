//! Incremental Server-Sent Events parser: feed it bytes as they arrive from the network (lines
//! may be split anywhere, even inside a UTF-8 character) and it yields complete events.
//! Follows the WHATWG rules that matter for LLM streams: `data:` lines (several join with
//! `\n`), `event:`, comment lines (`:` keep-alives) ignored, LF / CRLF / CR line ends, an
//! empty line dispatches. Lines over a size cap are a protocol error rather than unbounded
//! buffering.

use exai_actors::provider::types::ProviderError;

/// Longest line accepted (bytes): one streamed chunk of a chat completion is far smaller.
pub(crate) const MAX_LINE_BYTES: usize = 4 * 1024 * 1024;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Parser state between chunks.
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    /// Bytes of the current, not yet terminated line.
    line: Vec<u8>,
    /// The previous chunk ended with `\r`: a leading `\n` in the next one ends nothing.
    after_cr: bool,
    data: Option<String>,
    event: Option<String>,
}

impl SseParser {
    pub(crate) fn new() -> SseParser {
        SseParser::default()
    }

    /// Feeds bytes; complete events are pushed to `out`.
    pub(crate) fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), ProviderError> {
        if self.after_cr {
            self.after_cr = false;
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
            }
        }
        while let Some(pos) = chunk.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.push_bytes(&chunk[..pos])?;
            let line = std::mem::take(&mut self.line);
            self.line_done(&line, out)?;
            self.line = line;
            self.line.clear();
            let is_cr = chunk[pos] == b'\r';
            chunk = &chunk[pos + 1..];
            if is_cr {
                match chunk.first() {
                    Some(b'\n') => chunk = &chunk[1..],
                    None => self.after_cr = true,
                    Some(_) => {}
                }
            }
        }
        self.push_bytes(chunk)
    }

    /// End of input: an event still pending (no final blank line) is dispatched leniently;
    /// a partial line is processed first.
    pub(crate) fn finish(&mut self, out: &mut Vec<SseEvent>) -> Result<(), ProviderError> {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.line_done(&line, out)?;
        }
        self.dispatch(out);
        Ok(())
    }

    fn push_bytes(&mut self, bytes: &[u8]) -> Result<(), ProviderError> {
        if self.line.len() + bytes.len() > MAX_LINE_BYTES {
            return Err(ProviderError::Protocol(format!("stream line longer than {MAX_LINE_BYTES} bytes")));
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn line_done(&mut self, line: &[u8], out: &mut Vec<SseEvent>) -> Result<(), ProviderError> {
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(()); // comment / keep-alive
        }
        let line = std::str::from_utf8(line).map_err(|_| ProviderError::Protocol("stream line is not UTF-8".into()))?;
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            "event" => self.event = Some(value.to_string()),
            _ => {} // id, retry, unknown fields
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let event = self.event.take();
        if let Some(data) = self.data.take() {
            out.push(SseEvent { event, data });
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn parse_in_pieces(input: &[u8], piece: usize) -> Vec<SseEvent> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for chunk in input.chunks(piece) {
            p.feed(chunk, &mut out).unwrap();
        }
        p.finish(&mut out).unwrap();
        out
    }

    fn data(events: &[SseEvent]) -> Vec<&str> {
        events.iter().map(|e| e.data.as_str()).collect()
    }

    #[test]
    fn lines_split_anywhere_give_the_same_events() {
        let input = "data: {\"a\":\"héllo\"}\n\n: keep-alive\n\ndata: {\"b\":2}\r\n\r\ndata: [DONE]\n\n".as_bytes();
        let whole = parse_in_pieces(input, input.len());
        assert_eq!(data(&whole), vec!["{\"a\":\"héllo\"}", "{\"b\":2}", "[DONE]"]);
        for piece in 1..input.len() {
            assert_eq!(parse_in_pieces(input, piece), whole, "piece size {piece}");
        }
    }

    #[test]
    fn multi_line_data_and_event_names() {
        let input = b"event: message\ndata: line one\ndata:line two\n\nevent: error\ndata: {}\n\n";
        let events = parse_in_pieces(input, 3);
        assert_eq!(
            events,
            vec![
                SseEvent { event: Some("message".into()), data: "line one\nline two".into() },
                SseEvent { event: Some("error".into()), data: "{}".into() },
            ]
        );
    }

    #[test]
    fn comments_and_empty_keepalives_produce_nothing() {
        assert!(parse_in_pieces(b": ping\n\n\n\n:\n\nid: 3\nretry: 10\n\n", 2).is_empty());
    }

    #[test]
    fn cr_only_line_ends_and_cr_lf_split_across_chunks() {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        p.feed(b"data: a\r", &mut out).unwrap();
        p.feed(b"\n\r", &mut out).unwrap();
        p.feed(b"\ndata: b\r\r", &mut out).unwrap();
        p.finish(&mut out).unwrap();
        assert_eq!(data(&out), vec!["a", "b"]);
    }

    #[test]
    fn last_event_without_blank_line_is_dispatched_at_eof() {
        assert_eq!(data(&parse_in_pieces(b"data: x\n\ndata: [DONE]", 4)), vec!["x", "[DONE]"]);
    }

    #[test]
    fn invalid_utf8_and_oversized_lines_are_protocol_errors() {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        assert!(matches!(p.feed(b"data: \xff\xfe\n", &mut out), Err(ProviderError::Protocol(_))));
        let mut p = SseParser::new();
        let big = vec![b'a'; MAX_LINE_BYTES + 1];
        assert!(matches!(p.feed(&big, &mut out), Err(ProviderError::Protocol(_))));
    }
}
