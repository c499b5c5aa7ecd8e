//! A reader of server-sent events off a real HTTP response, for tests of live streams.

use std::time::Duration;

use futures::{StreamExt as _, stream::BoxStream};

/// One event of the stream (comments and keep-alives are skipped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub id: Option<String>,
    /// The `data:` lines joined.
    pub data: String,
}

impl SseEvent {
    /// The data as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).unwrap_or(serde_json::Value::Null)
    }
}

/// The events of a `text/event-stream` response, in order.
pub struct SseStream {
    body: BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl std::fmt::Debug for SseStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseStream")
            .field("buffered", &self.buffer.len())
            .finish_non_exhaustive()
    }
}

impl SseStream {
    pub fn new(response: reqwest::Response) -> Self {
        Self {
            body: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next event; `None` when the stream ended (or broke).
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse(&block) {
                    return Some(event);
                }
            }
            let chunk = self.body.next().await?.ok()?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// The next event within `timeout`, panicking with `what` if none comes or the stream ends.
    pub async fn next_within(&mut self, timeout: Duration, what: &str) -> SseEvent {
        tokio::time::timeout(timeout, self.next())
            .await
            .unwrap_or_else(|_| panic!("no {what} on the stream within {timeout:?}"))
            .unwrap_or_else(|| panic!("the stream ended before {what}"))
    }
}

fn parse(block: &str) -> Option<SseEvent> {
    let mut event = SseEvent {
        event: None,
        id: None,
        data: String::new(),
    };
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("event:") {
            event.event = Some(v.trim().to_owned());
        } else if let Some(v) = line.strip_prefix("id:") {
            event.id = Some(v.trim().to_owned());
        } else if let Some(v) = line.strip_prefix("data:") {
            event.data.push_str(v.trim());
        }
    }
    (event.event.is_some() || !event.data.is_empty()).then_some(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_block_is_parsed_and_a_comment_is_not_an_event() {
        let event = parse("event: board-changed\nid: 42\ndata: {\"seatId\":\"A-01\"}\n\n").unwrap();
        assert_eq!(event.event.as_deref(), Some("board-changed"));
        assert_eq!(event.id.as_deref(), Some("42"));
        assert_eq!(event.json()["seatId"], "A-01");
        assert_eq!(parse(": keep-alive\n\n"), None);
    }
}
