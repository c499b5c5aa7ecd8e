//! The seat-view service: the read side (seat board, customer timelines, live board stream).
