//! `reactor`: the event loop (filled in by the reactor work).
