//! (filled in by the auth part of issue 16)
