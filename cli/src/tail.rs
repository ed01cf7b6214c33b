//! A bounded tail of a byte stream: memory stays flat however much a task prints.

/// Keeps the last `limit` bytes written to it (amortised O(1) per byte).
#[derive(Debug, Clone)]
pub struct Tail {
    limit: usize,
    buf: Vec<u8>,
    total: u64,
}

impl Tail {
    /// A tail keeping at most `limit` bytes.
    pub fn new(limit: usize) -> Tail {
        Tail {
            limit,
            buf: Vec::new(),
            total: 0,
        }
    }

    /// Appends bytes, dropping the oldest beyond the limit.
    pub fn push(&mut self, bytes: &[u8]) {
        self.total += bytes.len() as u64;
        if bytes.len() >= self.limit {
            self.buf.clear();
            self.buf
                .extend_from_slice(&bytes[bytes.len() - self.limit..]);
            return;
        }
        self.buf.extend_from_slice(bytes);
        // Trim only once the buffer is twice the limit, so trimming stays amortised.
        if self.buf.len() >= 2 * self.limit {
            let excess = self.buf.len() - self.limit;
            self.buf.drain(..excess);
        }
    }

    /// Every byte ever pushed.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Whether bytes were dropped.
    pub fn truncated(&self) -> bool {
        self.total > self.kept().len() as u64
    }

    fn kept(&self) -> &[u8] {
        let start = self.buf.len().saturating_sub(self.limit);
        &self.buf[start..]
    }

    /// The kept bytes as text fit for an email: invalid UTF-8 replaced, control characters
    /// other than newline and tab dropped (terminal escapes, NULs from binary output), and a
    /// first line cut mid-way removed when bytes were dropped.
    pub fn to_text(&self) -> String {
        let text = String::from_utf8_lossy(self.kept());
        let mut clean: String = text
            .chars()
            .filter(|&c| c == '\n' || c == '\t' || !c.is_control())
            .collect();
        if self.truncated() {
            if let Some(newline) = clean.find('\n') {
                if newline + 1 < clean.len() {
                    clean.drain(..=newline);
                }
            }
        }
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::Tail;

    #[test]
    fn keeps_only_the_last_bytes() {
        let mut tail = Tail::new(10);
        for _ in 0..1000 {
            tail.push(b"abcdefg\n");
        }
        assert_eq!(tail.total(), 8000);
        assert!(tail.truncated());
        assert!(tail.buf.len() < 20);
        assert_eq!(tail.to_text(), "abcdefg\n");
    }

    #[test]
    fn binary_garbage_becomes_readable_text() {
        let mut tail = Tail::new(100);
        tail.push(b"ok\x00\x1b[31m\xff\xfe red\n");
        assert_eq!(tail.to_text(), "ok[31m\u{fffd}\u{fffd} red\n");
        assert!(!tail.truncated());
    }

    #[test]
    fn one_huge_write_keeps_its_end() {
        let mut tail = Tail::new(4);
        tail.push(b"0123456789");
        assert_eq!(tail.to_text(), "6789");
    }
}
