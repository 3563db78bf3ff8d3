//! (filled in by the disk part of issue 16)
