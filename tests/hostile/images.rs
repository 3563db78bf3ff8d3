//! (filled in by the images part of issue 16)
