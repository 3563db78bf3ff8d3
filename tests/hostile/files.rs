//! (filled in by the files part of issue 16)
