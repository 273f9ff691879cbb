//! What a call decides about its outcome: whether and how long to keep a produced value
//! ([`Storage`]), and how the call was answered ([`Answer`]).

/// Whether and how long to keep one produced value (the HTTP layer decides per response).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// As the policy says.
    Default,
    /// Fresh for this many milliseconds instead of the policy's `max_age`.
    MaxAge(u64),
    /// Fresh for `max_age_ms` instead of the policy's `max_age`, and kept for at least
    /// `kept_past_ms` beyond it whatever the call's own windows: a value that carries its
    /// own stale windows (an HTTP response's `stale-while-revalidate`, `stale-if-error`).
    Windowed {
        /// Fresh for this many milliseconds.
        max_age_ms: u64,
        /// Kept for at least this many milliseconds past `max_age_ms`.
        kept_past_ms: u64,
    },
    /// Not stored (still handed to every waiter of the run).
    Skip,
}

/// How a call was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// A fresh entry.
    Hit,
    /// A stale entry (`swr`); a background refresh was started.
    Stale,
    /// The body ran (here or in a concurrent caller).
    Miss,
    /// An old entry, because the body failed, was backed off or timed out.
    Grace,
    /// `should_bypass_cache`: nothing read or written.
    Bypass,
}
