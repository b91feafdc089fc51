//! A reader of server-sent events (the WHATWG `text/event-stream` format), bounded: an
//! event larger than [`MAX_EVENT_BYTES`] is an error, not an allocation.

/// The largest event (all its lines) the reader holds.
pub(crate) const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// One event as sent: its `id`, `event` name and `data` (lines joined with `\n`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RawEvent {
    pub(crate) id: Option<String>,
    pub(crate) event: Option<String>,
    pub(crate) data: String,
}

/// The stream was not server-sent events the reader can hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an event of the stream exceeds {MAX_EVENT_BYTES} bytes")]
pub(crate) struct EventTooLarge;

/// Turns chunks of bytes into events.
#[derive(Debug, Default)]
pub(crate) struct SseReader {
    line: Vec<u8>,
    event: RawEvent,
    held: usize,
    /// The previous chunk ended with `\r`: a `\n` starting this one ends no new line.
    after_cr: bool,
}

impl SseReader {
    /// Feeds `chunk`; answers the events it completed.
    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Result<Vec<RawEvent>, EventTooLarge> {
        let mut events = Vec::new();
        for &byte in chunk {
            let after_cr = std::mem::replace(&mut self.after_cr, byte == b'\r');
            match byte {
                b'\n' if after_cr => {}
                b'\r' | b'\n' => {
                    let line = std::mem::take(&mut self.line);
                    if let Some(event) = self.end_line(&line) {
                        events.push(event);
                    }
                }
                _ => {
                    self.held = self.held.saturating_add(1);
                    if self.held > MAX_EVENT_BYTES {
                        return Err(EventTooLarge);
                    }
                    self.line.push(byte);
                }
            }
        }
        Ok(events)
    }

    fn end_line(&mut self, line: &[u8]) -> Option<RawEvent> {
        if line.is_empty() {
            self.held = 0;
            let event = std::mem::take(&mut self.event);
            // An event with neither data nor a name is nothing (a heartbeat's blank line).
            return (event.event.is_some() || !event.data.is_empty() || event.id.is_some()).then_some(event);
        }
        let text = String::from_utf8_lossy(line);
        let (field, value) = match text.split_once(':') {
            Some(("", _)) => return None, // a comment
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (&*text, ""),
        };
        match field {
            "id" => self.event.id = Some(value.to_owned()),
            "event" => self.event.event = Some(value.to_owned()),
            "data" => {
                if !self.event.data.is_empty() {
                    self.event.data.push('\n');
                }
                self.event.data.push_str(value);
            }
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_anywhere_and_comments_are_skipped() {
        let stream = b": heartbeat\n\nid: 2\nevent: dispatching\ndata: {\"a\":1}\n\r\nevent: position\r\ndata: x\r\ndata: y\r\n\r\n";
        for split in 0..stream.len() {
            let mut reader = SseReader::default();
            let (head, tail) = stream.split_at(split);
            let mut events = reader.feed(head).unwrap();
            events.extend(reader.feed(tail).unwrap());
            assert_eq!(
                events,
                [
                    RawEvent { id: Some("2".into()), event: Some("dispatching".into()), data: "{\"a\":1}".into() },
                    RawEvent { id: None, event: Some("position".into()), data: "x\ny".into() },
                ],
                "split at {split}"
            );
        }
    }

    #[test]
    fn an_endless_event_is_refused() {
        let mut reader = SseReader::default();
        let chunk = vec![b'a'; 64 * 1024];
        let mut refused = false;
        for _ in 0..(MAX_EVENT_BYTES / chunk.len() + 2) {
            if reader.feed(&chunk).is_err() {
                refused = true;
                break;
            }
        }
        assert!(refused);
    }
}
