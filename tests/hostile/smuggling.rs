//! (filled in by the smuggling part of issue 16)
