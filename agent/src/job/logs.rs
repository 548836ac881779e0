//! A job's output lines, batched into `LogBatch` events for the outbox.
//!
//! A batch is sent every 50 ms or 200 lines, and never grows past [`MAX_BATCH_BYTES`] of text
//! so its sealed envelope stays well under the 256 KiB limit. `first_line` counts every line
//! of the job from 0, so the coordinator can spot gaps and repeats.

use sortie_shared::{Event, JobRef, LogLine, LogStream};

use crate::journal::Journal;

/// Most lines in one batch.
pub const MAX_BATCH_LINES: usize = 200;

/// Most text (plus per-line overhead) in one batch: 192 KiB, leaving room in the 256 KiB
/// envelope for the encoding and the tag.
pub const MAX_BATCH_BYTES: usize = 192 * 1024;

/// Postcard overhead of a line, generously: stream, time and length varints.
const LINE_OVERHEAD: usize = 16;

/// Lines waiting to be sent, pure state (no I/O).
#[derive(Debug)]
pub struct LogBatcher {
    job: JobRef,
    next_line: u64,
    lines: Vec<LogLine>,
    bytes: usize,
}

impl LogBatcher {
    /// An empty batcher for `job`, whose first line is line 0.
    pub fn new(job: JobRef) -> Self {
        LogBatcher {
            job,
            next_line: 0,
            lines: Vec::new(),
            bytes: 0,
        }
    }

    /// Adds a line; returns a batch that is ready to send (full by lines or bytes).
    pub fn push(&mut self, mut line: LogLine) -> Option<Event> {
        let budget = MAX_BATCH_BYTES - LINE_OVERHEAD;
        if line.text.len() > budget {
            let mut cut = budget - 16;
            while !line.text.is_char_boundary(cut) {
                cut -= 1;
            }
            line.text.truncate(cut);
            line.text.push_str(" [line cut]");
        }
        let cost = line.text.len() + LINE_OVERHEAD;
        let mut ready = None;
        if self.bytes + cost > MAX_BATCH_BYTES {
            ready = self.take();
        }
        self.lines.push(line);
        self.bytes += cost;
        if ready.is_none() && self.lines.len() >= MAX_BATCH_LINES {
            ready = self.take();
        }
        ready
    }

    /// The lines so far as one batch, if there are any.
    pub fn take(&mut self) -> Option<Event> {
        if self.lines.is_empty() {
            return None;
        }
        let lines = std::mem::take(&mut self.lines);
        let first_line = self.next_line;
        self.next_line += lines.len() as u64;
        self.bytes = 0;
        Some(Event::LogBatch {
            job: self.job,
            first_line,
            lines,
        })
    }
}

/// A job's log: the batcher plus the journal its batches go to.
#[derive(Debug)]
pub(super) struct JobLog {
    batcher: LogBatcher,
    journal: Journal,
}

impl JobLog {
    pub(super) fn new(job: JobRef, journal: Journal) -> Self {
        JobLog {
            batcher: LogBatcher::new(job),
            journal,
        }
    }

    /// Adds a line read now.
    pub(super) async fn line(&mut self, stream: LogStream, text: String) {
        let line = LogLine {
            stream,
            at_ms: crate::now_ms(),
            text,
        };
        if let Some(batch) = self.batcher.push(line) {
            self.append(batch).await;
        }
    }

    /// A line from the agent itself about the job, on stderr, marked `[sortie]`.
    pub(super) async fn note(&mut self, text: impl std::fmt::Display) {
        self.line(LogStream::Stderr, format!("[sortie] {text}"))
            .await;
    }

    /// Sends what is batched.
    pub(super) async fn flush(&mut self) {
        if let Some(batch) = self.batcher.take() {
            self.append(batch).await;
        }
    }

    async fn append(&self, batch: Event) {
        if let Err(e) = self.journal.append(vec![batch]).await {
            tracing::error!(error = %e, "appending job output to the outbox");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sortie_shared::{seal, Envelope, NodeKey, MAX_ENVELOPE_BYTES};

    const JOB: JobRef = JobRef {
        id: 9,
        plan_id: 2,
        job_seq: 1,
    };

    fn line(text: String) -> LogLine {
        LogLine {
            stream: LogStream::Stdout,
            at_ms: 1_700_000_000_000,
            text,
        }
    }

    fn batch_lines(event: &Event) -> (u64, usize) {
        match event {
            Event::LogBatch {
                first_line, lines, ..
            } => (*first_line, lines.len()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn batches_at_200_lines_and_counts_from_zero() {
        let mut batcher = LogBatcher::new(JOB);
        let mut batches = Vec::new();
        for i in 0..450 {
            batches.extend(batcher.push(line(format!("line {i}"))));
        }
        batches.extend(batcher.take());
        let shape: Vec<_> = batches.iter().map(batch_lines).collect();
        assert_eq!(shape, [(0, 200), (200, 200), (400, 50)]);
        assert!(batcher.take().is_none());
    }

    #[test]
    fn long_lines_split_batches_under_the_envelope_limit() {
        let key = NodeKey::generate();
        let mut batcher = LogBatcher::new(JOB);
        let mut batches = Vec::new();
        for i in 0..40 {
            batches.extend(batcher.push(line(format!("{i}{}", "x".repeat(16 * 1024)))));
        }
        // One line longer than a whole batch is cut to fit.
        batches.extend(batcher.push(line("é".repeat(400_000))));
        batches.extend(batcher.take());
        let mut next = 0;
        for batch in &batches {
            let (first, count) = batch_lines(batch);
            assert_eq!(first, next);
            next += count as u64;
            let sealed = seal(
                &Envelope::new(1, 1, u64::MAX, batch.clone()),
                "sortie/v1/nodes/1/evt",
                &key,
            );
            assert!(sealed.len() < MAX_ENVELOPE_BYTES, "{}", sealed.len());
        }
        assert_eq!(next, 41);
        assert!(batches.len() >= 4, "{}", batches.len());
    }
}
