//! (filled in by the memory part of issue 16)
