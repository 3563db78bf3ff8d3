//! (filled in by the webhook part of issue 16)
