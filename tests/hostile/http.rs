//! (filled in by the http part of issue 16)
