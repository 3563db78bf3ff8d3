//! (filled in by the output part of issue 16)
