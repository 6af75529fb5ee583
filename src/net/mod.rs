//! `net`: non-blocking TCP and Unix sockets on the reactor (filled in by the net work).
