//! (filled in by the broadcast part of issue 16)
