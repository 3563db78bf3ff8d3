//! (filled in by the slow part of issue 16)
