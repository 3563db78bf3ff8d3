//! A fast path for the Japanese charsets mail actually uses (ISO-2022-JP, Shift_JIS, EUC-JP):
//! [`decode`] turns well-formed text into exactly the `String` encoding_rs would, or answers
//! `None`, and the caller then decodes the whole input with encoding_rs as before.
//!
//! Why it exists: encoding_rs (the WHATWG decoders mail-parser uses with `full_encoding`) costs
//! ~84 instructions a character on ISO-2022-JP and ~49 on Shift_JIS (callgrind, the sample
//! bodies of `benches/charset.rs`), most of the budget of issue #9 (50,000 mails/s per core)
//! for a 4 KiB Japanese mail. Its per-byte state machine handles every malformed case;
//! well-formed mail needs none of that, only a table look-up a character and whole-run copies
//! of ASCII: ~18 and ~15 instructions a character here.
//!
//! encoding_rs stays the source of truth, in two ways:
//! - The tables are built once, at first use, by decoding every JIS X 0208 / Shift_JIS code
//!   and every single byte through encoding_rs itself; no mapping is written down here.
//! - Anything off the well-formed path answers `None` rather than being imitated: an invalid
//!   or unmapped byte or pair, a truncated pair or escape sequence, an escape sequence other
//!   than the five WHATWG's ISO-2022-JP knows, an escape sequence directly after another (the
//!   "output flag" rule, where WHATWG emits U+FFFD), JIS X 0212 in EUC-JP (`0x8F`), a byte
//!   order mark (encoding_rs then decodes as UTF-8/UTF-16). So whenever the answer is `Some`,
//!   it equals encoding_rs's output, and the tests compare the two exhaustively and at random.
//!
//! The reference is what mail-parser 1.0.1 calls (vendor/mail-parser/src/decoders/charsets/
//! multi_byte.rs): `Encoding::decode` for body text and `new_decoder()` +
//! `decode_to_string(.., last = true)` for encoded words; both sniff a BOM, which is why a
//! BOM answers `None` here.

use std::mem::MaybeUninit;
use std::sync::LazyLock;

use encoding_rs::{Encoding, EUC_JP, ISO_2022_JP, SHIFT_JIS};

/// Decodes `bytes` of the charset `label` (a MIME charset parameter: any case, surrounding
/// whitespace or double quotes allowed, resolved with encoding_rs's WHATWG label table) when
/// it is ISO-2022-JP, Shift_JIS or EUC-JP and the input is well formed. `None` means "decode
/// with encoding_rs instead": an unknown or other charset, or input this fast path does not
/// handle. A `Some` is always exactly encoding_rs's output.
pub fn decode(label: &str, bytes: &[u8]) -> Option<String> {
    let label = label.trim().trim_matches('"');
    decode_encoding(Encoding::for_label(label.as_bytes())?, bytes)
}

/// [`decode`] for a charset already resolved to an encoding_rs [`Encoding`] (for a caller that
/// maps labels itself, e.g. from mail-parser's `Charset`, whose label table is larger).
pub fn decode_encoding(encoding: &'static Encoding, bytes: &[u8]) -> Option<String> {
    // encoding_rs sniffs a BOM first and then decodes as UTF-8 or UTF-16 whatever the label
    // said; not worth imitating.
    if Encoding::for_bom(bytes).is_some() {
        return None;
    }
    if encoding == ISO_2022_JP {
        iso_2022_jp(bytes)
    } else if encoding == SHIFT_JIS {
        shift_jis(bytes)
    } else if encoding == EUC_JP {
        euc_jp(bytes)
    } else {
        None
    }
}

// ------------------------------------------------------------------------------ tables

/// One decoded character as a table entry: its UTF-8 bytes in the low bytes (little-endian
/// order, so `to_le_bytes` gives them in order) and their count in the top byte. 0 means "not
/// a character here": the input is malformed or unmapped, and the fast path gives up. Every
/// character these charsets decode to is in the BMP, so three bytes always suffice.
type Entry = u32;

/// The number of UTF-8 bytes of an entry (masked: the compiler then knows it is at most 3).
#[inline(always)]
fn count(e: Entry) -> usize {
    (e >> 24) as usize & 3
}

/// The entry for `c`, 0 for U+FFFD (encoding_rs's answer for a malformed sequence; no valid
/// code of these charsets maps to it) and for a character that would not fit.
fn entry(c: char) -> Entry {
    let mut buf = [0u8; 4];
    let len = c.encode_utf8(&mut buf).len();
    if c == char::REPLACEMENT_CHARACTER || len > 3 {
        return 0;
    }
    u32::from_le_bytes([buf[0], buf[1], buf[2], len as u8])
}

/// The entry for a decoder output that should be one character: 0 unless it is exactly one.
fn entry_of(text: &str) -> Entry {
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => entry(c),
        _ => 0,
    }
}

/// Decodes `input`, made of `records` records each ended by `\n`, through `encoding` (no BOM
/// handling: the fast path refuses BOMs) and hands each record's text to `each` in order.
/// Decoding the tens of thousands of codes one call each would cost as much again as building
/// the tables; in one call, the records must each leave the decoder back in its initial state,
/// where `\n` is itself and cannot be swallowed: the caller chooses records that do, and the
/// line count (and `each`, which checks the characters of its line) confirm it. `false` when
/// they do not (another encoding_rs?): the caller then keeps an empty table, and the fast path
/// always answers `None` — slow, never wrong, and the tests fail.
fn decode_records(
    encoding: &'static Encoding,
    input: &[u8],
    records: usize,
    mut each: impl FnMut(usize, &str) -> bool,
) -> bool {
    let (text, _) = encoding.decode_without_bom_handling(input);
    let Some(lines) = text.strip_suffix('\n') else {
        return false;
    };
    lines.split('\n').count() == records
        && lines.split('\n').enumerate().all(|(k, line)| each(k, line))
}

/// The entry for `input` decoded on its own (for the single-byte tables, 256 calls each).
fn decode_one(encoding: &'static Encoding, input: &[u8]) -> Entry {
    entry_of(&encoding.decode_without_bom_handling(input).0)
}

/// ISO-2022-JP escape sequences (WHATWG): `ESC ( B` ASCII, `ESC ( J` JIS X 0201 Roman,
/// `ESC ( I` JIS X 0201 katakana, `ESC $ @` / `ESC $ B` JIS X 0208.
const ESC: u8 = 0x1B;
const TO_ASCII: &[u8] = b"\x1b(B";
const TO_ROMAN: &[u8] = b"\x1b(J";
const TO_KATAKANA: &[u8] = b"\x1b(I";
const TO_JIS0208: &[u8] = b"\x1b$B";

/// A two-byte table: the entry for the code `lead trail` is at `lead << 8 | trail`. All 2^16
/// slots (256 KiB, of which a text touches a few hundred entries), so a look-up is one load
/// without a range check, and anything that is not a mapped code (an ASCII or invalid lead,
/// a bad trail) finds 0.
type PairTable = [Entry; 1 << 16];

/// The slot of `lead trail` in a [`PairTable`].
#[inline(always)]
fn pair_slot(lead: u8, trail: u8) -> usize {
    usize::from(u16::from_be_bytes([lead, trail]))
}

/// The entry for `lead trail`, 0 for anything not in the table.
#[inline(always)]
fn pair_entry(table: &PairTable, lead: u8, trail: u8) -> Entry {
    // Never `None`: a `u16` slot is always in the table; `get` just says so without a panic.
    table.get(pair_slot(lead, trail)).copied().unwrap_or(0)
}

/// A JIS X 0208 table from `encoding`: one record a row, `prefix`, the row's 94 codes (bytes
/// `0x21..=0x7E` plus `offset`: 0 for ISO-2022-JP, 0x80 for EUC-JP), `suffix`. Each code
/// decodes to exactly one character, mapped or U+FFFD (both decoders consume the whole code
/// and stay in their two-byte state on an unmapped one), so a row is 94 characters.
fn jis0208_table(
    encoding: &'static Encoding,
    offset: u8,
    prefix: &[u8],
    suffix: &[u8],
) -> Box<PairTable> {
    const CODES: std::ops::RangeInclusive<u8> = 0x21..=0x7E;
    let mut input = Vec::with_capacity(94 * (prefix.len() + 94 * 2 + suffix.len() + 1));
    for lead in CODES {
        input.extend_from_slice(prefix);
        for trail in CODES {
            input.extend_from_slice(&[lead + offset, trail + offset]);
        }
        input.extend_from_slice(suffix);
        input.push(b'\n');
    }
    let mut table: Box<PairTable> = Box::new([0; 1 << 16]);
    let built = decode_records(encoding, &input, 94, |row, line| {
        let lead = 0x21 + row as u8 + offset;
        for (trail, c) in CODES.zip(line.chars()) {
            if let Some(slot) = table.get_mut(pair_slot(lead, trail + offset)) {
                *slot = entry(c);
            }
        }
        line.chars().count() == 94
    });
    if !built {
        table.fill(0);
    }
    table
}

// The tables are boxed: big, and built once, so not worth a move through the stack; the
// extra pointer load a look-up costs is hoisted out of the loops.
struct Iso2022JpTables {
    jis0208: Box<PairTable>,
    /// By byte, in the `ESC ( J` state (0 for `ESC` and everything invalid).
    roman: [Entry; 256],
    /// By byte, in the `ESC ( I` state (0 for `ESC` and everything invalid).
    katakana: [Entry; 256],
}

static ISO_2022_JP_TABLES: LazyLock<Iso2022JpTables> = LazyLock::new(|| {
    // Each row as `ESC $ B … ESC ( B` then `\n`: back in ASCII, where the `\n` is itself and
    // clears the "output flag" before the next row's `ESC $ B`.
    let jis0208 = jis0208_table(ISO_2022_JP, 0, TO_JIS0208, TO_ASCII);
    let single = |escape: &[u8]| {
        let mut table = [0; 256];
        for (b, e) in (0..=255u8).zip(table.iter_mut()) {
            *e = decode_one(ISO_2022_JP, &[escape, &[b]].concat());
        }
        table
    };
    Iso2022JpTables {
        jis0208,
        roman: single(TO_ROMAN),
        katakana: single(TO_KATAKANA),
    }
});

/// Shift_JIS's lead bytes, 0x81..=0x9F and 0xE0..=0xFC (the structure of the encoding, not a
/// mapping: the characters come from encoding_rs).
fn is_sjis_lead(b: u8) -> bool {
    matches!(b, 0x81..=0x9F | 0xE0..=0xFC)
}

struct ShiftJisTables {
    /// Every pair of a lead byte and a trail byte.
    pairs: Box<PairTable>,
    /// By byte, a non-ASCII byte that is a character on its own (half-width katakana, 0x80).
    single: [Entry; 256],
}

static SHIFT_JIS_TABLES: LazyLock<ShiftJisTables> = LazyLock::new(|| {
    let leads: Vec<u8> = (0x80..=0xFFu8).filter(|&l| is_sjis_lead(l)).collect();
    let mut pairs: Box<PairTable> = Box::new([0; 1 << 16]);
    let mut set = |lead: u8, trail: u8, e: Entry| {
        if let Some(slot) = pairs.get_mut(pair_slot(lead, trail)) {
            *slot = e;
        }
    };
    // Non-ASCII trails 0x80..=0xFF: each pair is consumed whole, as one character or one
    // U+FFFD, so a lead's row is one record of 128 characters.
    let mut input = Vec::new();
    for &lead in &leads {
        input.extend((0x80..=0xFFu8).flat_map(|trail| [lead, trail]));
        input.push(b'\n');
    }
    let high = decode_records(SHIFT_JIS, &input, leads.len(), |row, line| {
        for (trail, c) in (0x80..=0xFFu8).zip(line.chars()) {
            set(leads[row], trail, entry(c));
        }
        line.chars().count() == 128
    });
    // ASCII trails 0x40..=0x7F: an unmapped pair is U+FFFD and then the trail read again as
    // ASCII, so one record a pair (one character, or not an entry). Trails below 0x40 are
    // never valid, stay 0, and are not tried (a `\n` trail would split a record).
    let mut input = Vec::new();
    let codes: Vec<(u8, u8)> = leads
        .iter()
        .flat_map(|&l| (0x40..=0x7Fu8).map(move |t| (l, t)))
        .collect();
    for &(lead, trail) in &codes {
        input.extend_from_slice(&[lead, trail, b'\n']);
    }
    let low = decode_records(SHIFT_JIS, &input, codes.len(), |k, line| {
        set(codes[k].0, codes[k].1, entry_of(line));
        true
    });
    if !(high && low) {
        pairs.fill(0);
    }
    let mut single = [0; 256];
    for (b, e) in (0x80..=0xFFu8).zip(single[0x80..].iter_mut()) {
        // A lead byte alone is a truncated pair (U+FFFD): 0, as it must be.
        *e = decode_one(SHIFT_JIS, &[b]);
    }
    ShiftJisTables { pairs, single }
});

struct EucJpTables {
    jis0208: Box<PairTable>,
    /// By second byte, `0x8E` + that byte (half-width katakana).
    katakana: [Entry; 256],
}

static EUC_JP_TABLES: LazyLock<EucJpTables> = LazyLock::new(|| {
    // Rows of bare codes, lead and trail 0xA1..=0xFE (no state to leave between rows).
    let jis0208 = jis0208_table(EUC_JP, 0x80, b"", b"");
    let mut katakana = [0; 256];
    for (b, e) in (0..=255u8).zip(katakana.iter_mut()) {
        *e = decode_one(EUC_JP, &[0x8E, b]);
    }
    EucJpTables { jis0208, katakana }
});

// ------------------------------------------------------------------------------ output

/// The decoded UTF-8, written into a buffer sized for the worst case up front, so each
/// character is one unconditional 4-byte store (the entry; its count byte is overwritten by
/// the next character or cut off at the end) and each ASCII run 8-byte stores, without the
/// growth checks of `String::push`. The buffer is the spare capacity of a `Vec`, not zeroed
/// (zeroing 3× the input would cost as much as a fifth of the decoding).
///
/// Invariant, what [`with_output`] relies on: `len` only grows over bytes just written, so
/// `spare[..len]` is initialised, and it is whole UTF-8 characters (table entries made by
/// `char::encode_utf8`, and input bytes checked to be ASCII).
struct Out<'a> {
    spare: &'a mut [MaybeUninit<u8>],
    len: usize,
}

/// Room past the last character for the whole-entry and whole-word stores.
const SLACK: usize = 8;

impl Out<'_> {
    /// Appends one table entry. `None` (never expected, the buffer is sized for the worst
    /// case) only makes the caller fall back instead of panicking.
    #[inline(always)]
    fn put(&mut self, e: Entry) -> Option<()> {
        let dst = self.spare.get_mut(self.len..)?.first_chunk_mut::<4>()?;
        *dst = e.to_le_bytes().map(MaybeUninit::new);
        self.len += count(e);
        Some(())
    }

    /// Appends four table entries, with one room check.
    #[inline(always)]
    fn put4(&mut self, e: [Entry; 4]) -> Option<()> {
        let dst = self.spare.get_mut(self.len..)?.first_chunk_mut::<16>()?;
        let mut at = 0;
        for e in e {
            // `at` ≤ 9: four stores of 4 bytes fit in 16, and no check is left in the code.
            dst.get_mut(at..at + 4)?
                .copy_from_slice(&e.to_le_bytes().map(MaybeUninit::new));
            at += count(e);
        }
        self.len += at;
        Some(())
    }

    /// Writes all of `word` and appends its first `n` bytes (ASCII, checked by the caller).
    #[inline(always)]
    fn put_word(&mut self, word: [u8; 8], n: usize) -> Option<()> {
        let dst = self.spare.get_mut(self.len..)?.first_chunk_mut::<8>()?;
        *dst = word.map(MaybeUninit::new);
        self.len += n.min(8);
        Some(())
    }

    /// Appends one ASCII byte.
    #[inline(always)]
    fn put_ascii(&mut self, b: u8) -> Option<()> {
        self.spare.get_mut(self.len)?.write(b);
        self.len += 1;
        Some(())
    }
}

/// Runs `decode` on a fresh [`Out`] with room for the worst case of `input_len` bytes (no byte
/// of these charsets becomes more than 3 bytes of UTF-8: half-width katakana 1 → 3, two-byte
/// codes 2 → 2 or 3) and returns what it wrote as a `String`.
fn with_output(input_len: usize, decode: impl FnOnce(&mut Out) -> Option<()>) -> Option<String> {
    let mut buf: Vec<u8> = Vec::with_capacity(input_len.checked_mul(3)?.checked_add(SLACK)?);
    let mut out = Out {
        spare: buf.spare_capacity_mut(),
        len: 0,
    };
    decode(&mut out)?;
    let len = out.len;
    // SAFETY: `buf` is empty, so `spare` started at its first byte; by `Out`'s invariant the
    // first `len` bytes were written (and `len` ≤ `spare.len()` ≤ the capacity: every write
    // went through a bounds-checked slice of `spare`, and `len` never passes the last one).
    unsafe { buf.set_len(len) };
    // This is the one place a bug in this file could break `String`'s guarantee, so the bytes
    // are checked before they become one: simdutf8's SIMD check costs a fraction of an
    // instruction a byte (std's scalar check ~9, more than decoding). A failure would be a bug
    // here; answering None then lets encoding_rs decode, so the mail still comes out right.
    simdutf8::basic::from_utf8(&buf).ok()?;
    // SAFETY: checked to be UTF-8 just above.
    Some(unsafe { String::from_utf8_unchecked(buf) })
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// High bit set in each byte of `v` that is zero, and possibly in bytes above (later than)
/// the first zero byte (borrows only propagate upwards), so its lowest set bit is exact.
#[inline(always)]
fn zero_bytes(v: u64) -> u64 {
    v.wrapping_sub(LO) & !v & HI
}

/// Copies the run of ASCII at the start of `rest` and returns what follows it: the end of
/// input or the first non-ASCII byte, and also, with `ISO` (ISO-2022-JP's ASCII state), the
/// first `ESC`, `SO` or `SI` (0x1B, 0x0E, 0x0F: the escape, and the shifts WHATWG rejects).
/// Eight bytes at a time: mail text has runs of ASCII, and in ISO-2022-JP every line has at
/// least the run between its last `ESC ( B` and the next line's first escape.
#[inline(always)]
fn copy_ascii<'a, const ISO: bool>(mut rest: &'a [u8], out: &mut Out<'_>) -> Option<&'a [u8]> {
    while let Some((word, tail)) = rest.split_first_chunk::<8>() {
        let w = u64::from_le_bytes(*word);
        let mut stop = w & HI;
        if ISO {
            stop |= zero_bytes(w ^ (LO * u64::from(ESC))) | zero_bytes((w & !LO) ^ (LO * 0x0E));
        }
        // The whole word goes out even when the run ends inside it: the bytes past the run
        // are overwritten by what follows it (or cut off), and `len` only counts the run.
        if stop != 0 {
            let n = (stop.trailing_zeros() / 8) as usize;
            out.put_word(*word, n)?;
            return rest.get(n..);
        }
        out.put_word(*word, 8)?;
        rest = tail;
    }
    while let [b, tail @ ..] = rest {
        if *b >= 0x80 || (ISO && (*b == ESC || *b == 0x0E || *b == 0x0F)) {
            break;
        }
        out.put_ascii(*b)?;
        rest = tail;
    }
    Some(rest)
}

// ------------------------------------------------------------------------------ decoders
//
// Each walks the input as a shrinking slice (`rest`): slice patterns cost one length check a
// step, where indexing costs an overflow and a bounds check. The pair loops are the hot ones
// (Japanese text is mostly two-byte codes): one table look-up, one store a character.

/// Decodes two-byte codes from the start of `rest` while `lookup` has an entry for them and
/// returns what follows. Four codes a step (one length check, one room check, one branch),
/// then one at a time, which also finishes a step that met a code without an entry.
#[inline(always)]
fn decode_pairs<'a>(
    mut rest: &'a [u8],
    out: &mut Out<'_>,
    lookup: impl Fn(u8, u8) -> Entry,
) -> Option<&'a [u8]> {
    while let [l1, t1, l2, t2, l3, t3, l4, t4, tail @ ..] = rest {
        let e = [
            lookup(*l1, *t1),
            lookup(*l2, *t2),
            lookup(*l3, *t3),
            lookup(*l4, *t4),
        ];
        if e.contains(&0) {
            break;
        }
        out.put4(e)?;
        rest = tail;
    }
    while let [lead, trail, tail @ ..] = rest {
        let e = lookup(*lead, *trail);
        if e == 0 {
            break;
        }
        out.put(e)?;
        rest = tail;
    }
    Some(rest)
}

#[derive(Clone, Copy)]
enum IsoState {
    Ascii,
    Roman,
    Katakana,
    Jis0208,
}

/// ISO-2022-JP: runs between escape sequences, each decoded by the state it is in, until an
/// `ESC` (the only way out of a run in valid input) or the end.
fn iso_2022_jp(bytes: &[u8]) -> Option<String> {
    let tables = &*ISO_2022_JP_TABLES;
    with_output(bytes.len(), |out| {
        let mut state = IsoState::Ascii;
        let mut rest = bytes;
        let mut escaped = false;
        loop {
            let run_start = rest.len();
            match state {
                IsoState::Ascii => rest = copy_ascii::<true>(rest, out)?,
                IsoState::Roman | IsoState::Katakana => {
                    let table = match state {
                        IsoState::Roman => &tables.roman,
                        _ => &tables.katakana,
                    };
                    // `ESC` has no entry, so the run stops there, as at any invalid byte.
                    while let [b, tail @ ..] = rest {
                        let e = table[usize::from(*b)];
                        if e == 0 {
                            break;
                        }
                        out.put(e)?;
                        rest = tail;
                    }
                }
                IsoState::Jis0208 => {
                    // Invalid bytes (`ESC` among them) and unmapped codes have no entry, so
                    // the run stops there.
                    rest = decode_pairs(rest, out, |lead, trail| {
                        pair_entry(&tables.jis0208, lead, trail)
                    })?;
                }
            }
            // The run ended: at the end of input (fine in every state: a run never ends inside
            // a pair, a lone byte left over is seen below), or at an escape sequence, or at a
            // byte the state rejects.
            let [b, sequence @ ..] = rest else { break };
            if *b != ESC {
                return None;
            }
            // WHATWG's output flag: an escape sequence right after another is an error
            // (U+FFFD).
            if escaped && rest.len() == run_start {
                return None;
            }
            let (designation, tail) = sequence.split_first_chunk::<2>()?;
            state = match designation {
                b"(B" => IsoState::Ascii,
                b"(J" => IsoState::Roman,
                b"(I" => IsoState::Katakana,
                b"$B" | b"$@" => IsoState::Jis0208,
                _ => return None,
            };
            escaped = true;
            rest = tail;
        }
        Some(())
    })
}

/// Shift_JIS: pairs while they come, ASCII runs and single-byte characters in between.
fn shift_jis(bytes: &[u8]) -> Option<String> {
    let tables = &*SHIFT_JIS_TABLES;
    with_output(bytes.len(), |out| {
        let mut rest = bytes;
        loop {
            // Stops at ASCII (out of the table), at a single-byte character (no entry for
            // it as a lead), and at a bad or unmapped pair.
            rest = decode_pairs(rest, out, |lead, trail| {
                pair_entry(&tables.pairs, lead, trail)
            })?;
            match rest {
                [] => break,
                [b, ..] if *b < 0x80 => rest = copy_ascii::<false>(rest, out)?,
                [b, tail @ ..] => {
                    // Half-width katakana or 0x80; a lead byte here (bad trail, unmapped, or
                    // the last byte) or an invalid byte has no entry.
                    let e = tables.single[usize::from(*b)];
                    if e == 0 {
                        return None;
                    }
                    out.put(e)?;
                    rest = tail;
                }
            }
        }
        Some(())
    })
}

/// EUC-JP: JIS X 0208 pairs (both bytes 0xA1..=0xFE), `0x8E` + half-width katakana, ASCII.
/// JIS X 0212 (`0x8F` + two bytes) is rare in mail and is left to encoding_rs.
fn euc_jp(bytes: &[u8]) -> Option<String> {
    let tables = &*EUC_JP_TABLES;
    with_output(bytes.len(), |out| {
        let mut rest = bytes;
        loop {
            // Stops at ASCII (out of the table), at `0x8E`/`0x8F` (no entries as leads), and
            // at a bad or unmapped pair.
            rest = decode_pairs(rest, out, |lead, trail| {
                pair_entry(&tables.jis0208, lead, trail)
            })?;
            match rest {
                [] => break,
                [b, ..] if *b < 0x80 => rest = copy_ascii::<false>(rest, out)?,
                [0x8E, trail, tail @ ..] => {
                    let e = tables.katakana[usize::from(*trail)];
                    if e == 0 {
                        return None;
                    }
                    out.put(e)?;
                    rest = tail;
                }
                _ => return None,
            }
        }
        Some(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    const JAPANESE: [&Encoding; 3] = [ISO_2022_JP, SHIFT_JIS, EUC_JP];

    /// encoding_rs's answer the way mail-parser 1.0.1 asks for it: `Encoding::decode` (BOM
    /// sniffing; body text), checked against `new_decoder()` + `decode_to_string(.., true)`
    /// (encoded words), so the fast path is held to both. Also whether it found errors.
    fn reference(encoding: &'static Encoding, bytes: &[u8]) -> (String, bool) {
        let (text, _, malformed) = encoding.decode(bytes);
        let mut decoder = encoding.new_decoder();
        let mut streamed =
            String::with_capacity(decoder.max_utf8_buffer_length(bytes.len()).unwrap());
        let (result, read, _) = decoder.decode_to_string(bytes, &mut streamed, true);
        assert_eq!(
            (result, read),
            (encoding_rs::CoderResult::InputEmpty, bytes.len())
        );
        assert_eq!(
            text, streamed,
            "encoding_rs's two entry points disagree on {bytes:02x?}"
        );
        (streamed, malformed)
    }

    /// The contract on one input: a `Some` is encoding_rs's output, and a `None` only happens
    /// where encoding_rs itself reports malformed input, for a BOM, or for EUC-JP with
    /// `0x8F` (JIS X 0212, not handled) — so the fast path is never silently vacuous.
    /// Returns whether the fast path answered.
    fn check(encoding: &'static Encoding, bytes: &[u8]) -> bool {
        let (expected, malformed) = reference(encoding, bytes);
        let fast = decode_encoding(encoding, bytes);
        match &fast {
            Some(text) => assert_eq!(text, &expected, "{} input {bytes:02x?}", encoding.name()),
            None => assert!(
                malformed
                    || Encoding::for_bom(bytes).is_some()
                    || (encoding == EUC_JP && bytes.contains(&0x8F)),
                "{} refused well-formed input {bytes:02x?} ({expected:?})",
                encoding.name()
            ),
        }
        fast.is_some()
    }

    #[test]
    fn every_jis0208_code_in_iso_2022_jp() {
        let mut some_in_range = 0;
        for lead in 0..=255u8 {
            for trail in 0..=255u8 {
                let input = [TO_JIS0208, &[lead, trail], TO_ASCII].concat();
                let answered = check(ISO_2022_JP, &input);
                if (0x21..=0x7E).contains(&lead) && (0x21..=0x7E).contains(&trail) {
                    some_in_range += usize::from(answered);
                } else {
                    assert!(!answered, "{input:02x?} is not a JIS X 0208 code");
                }
            }
        }
        // JIS X 0208 has 6,879 characters; WHATWG adds the NEC row 13 and IBM extensions.
        eprintln!("ISO-2022-JP: {some_in_range} of 94×94 codes take the fast path");
        assert!(
            some_in_range > 6879,
            "only {some_in_range} codes decoded by the fast path"
        );
        // `ESC $ @` (JIS C 6226-1978) selects the same table.
        assert!(check(ISO_2022_JP, b"\x1b$@%O%m!<\x1b(B"));
    }

    #[test]
    fn every_shift_jis_pair() {
        let (mut some, mut some_lead) = (0, 0);
        for lead in 0..=255u8 {
            for trail in 0..=255u8 {
                let answered = check(SHIFT_JIS, &[lead, trail]);
                some += usize::from(answered);
                some_lead += usize::from(answered && is_sjis_lead(lead));
            }
        }
        eprintln!("Shift_JIS: {some} of 256×256 byte pairs take the fast path, {some_lead} codes");
        // JIS X 0208's 6,879 characters, NEC and IBM extensions, the user-defined area.
        assert!(
            some_lead > 6879,
            "only {some_lead} codes decoded by the fast path"
        );
    }

    #[test]
    fn every_euc_jp_pair() {
        let mut some_jis0208 = 0;
        for lead in 0..=255u8 {
            for trail in 0..=255u8 {
                let answered = check(EUC_JP, &[lead, trail]);
                if lead >= 0xA1 && trail >= 0xA1 {
                    some_jis0208 += usize::from(answered);
                }
            }
        }
        eprintln!("EUC-JP: {some_jis0208} of 94×94 codes take the fast path");
        assert!(
            some_jis0208 > 6879,
            "only {some_jis0208} codes decoded by the fast path"
        );
        // Half-width katakana: all 63 of 0x8E 0xA1..=0xDF.
        assert_eq!(
            (0xA1..=0xDFu8)
                .filter(|&b| check(EUC_JP, &[0x8E, b]))
                .count(),
            63
        );
    }

    #[test]
    fn every_single_byte_in_every_state_and_word_position() {
        for b in 0..=255u8 {
            for encoding in JAPANESE {
                check(encoding, &[b]);
                // Each position of the 8-byte ASCII words, and the tail after them.
                for at in 0..=17 {
                    let mut input = b"0123456789abcdefg".to_vec();
                    input.insert(at, b);
                    check(encoding, &input);
                }
            }
            for escape in [TO_ASCII, TO_ROMAN, TO_KATAKANA, TO_JIS0208] {
                check(ISO_2022_JP, &[escape, &[b]].concat());
                check(ISO_2022_JP, &[escape, &[b], b"x", TO_ASCII].concat());
                check(
                    ISO_2022_JP,
                    &[escape, &[b, b], TO_ASCII, b"0123456789"].concat(),
                );
            }
        }
        // Every ASCII byte but ESC/SO/SI, every JIS X 0201 Roman and katakana byte answers.
        let ascii: Vec<u8> = (0..0x80)
            .filter(|b| ![0x0E, 0x0F, ESC].contains(b))
            .collect();
        assert!(check(ISO_2022_JP, &ascii));
        assert!(check(ISO_2022_JP, &[TO_ROMAN, &ascii].concat()));
        assert!(check(
            ISO_2022_JP,
            &[TO_KATAKANA, &(0x21..=0x5F).collect::<Vec<u8>>()].concat()
        ));
        let all_ascii: Vec<u8> = (0..0x80).collect();
        assert!(check(SHIFT_JIS, &all_ascii) && check(EUC_JP, &all_ascii));
        assert!(check(
            SHIFT_JIS,
            &(0xA1..=0xDF).chain([0x80]).collect::<Vec<u8>>()
        ));
    }

    #[test]
    fn escape_sequences_follow_whatwg() {
        // Right after another escape sequence: U+FFFD in WHATWG, so refused here.
        assert!(!check(ISO_2022_JP, b"a\x1b(B\x1b$B%O\x1b(B"));
        assert!(!check(ISO_2022_JP, b"\x1b$B\x1b(Ba"));
        // At the very start, or with anything between, fine; so is ending in any state.
        assert!(check(ISO_2022_JP, b"\x1b(Ba\x1b$B%O\x1b(B\r\n"));
        assert!(check(ISO_2022_JP, b"a\x1b$B"));
        assert!(check(ISO_2022_JP, b"\x1b$B%O"));
        // Unknown, truncated, or a pair cut short by an escape: refused.
        for bad in [
            &b"\x1b$A%O"[..],
            b"\x1b$(D%O",
            b"\x1b(D",
            b"\x1b",
            b"\x1b(",
            b"\x1b$B%",
            b"\x1b$B%\x1b(B",
        ] {
            assert!(!check(ISO_2022_JP, bad), "{bad:02x?}");
        }
        // Roman's two differences from ASCII, and text after it.
        assert!(check(ISO_2022_JP, b"\x1b(J\\~a\x1b(B\\~"));
    }

    #[test]
    fn byte_order_marks_are_left_to_encoding_rs() {
        for encoding in JAPANESE {
            for bom in [&b"\xEF\xBB\xBF"[..], b"\xFE\xFF", b"\xFF\xFE"] {
                assert!(!check(encoding, &[bom, b"abc"].concat()));
            }
            // A partial BOM is no BOM.
            check(encoding, b"\xEF\xBBabc");
        }
        // EF BB BF B0 A1 B0 is three EUC-JP kanji, but encoding_rs reads a BOM and UTF-8.
        let bom_or_kanji = b"\xEF\xBB\xBF\xB0\xA1\xB0";
        assert!(euc_jp(bom_or_kanji).is_some_and(|s| s.chars().count() == 3));
        assert!(!check(EUC_JP, bom_or_kanji));
    }

    /// The sample mails of `benches/mime.rs`, bodies as sent (7bit/8bit: no transfer decoding).
    fn sample_body(raw: &[u8]) -> &[u8] {
        let at = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a header/body separator");
        &raw[at + 4..]
    }

    #[test]
    fn bench_samples_take_the_fast_path() {
        let iso = sample_body(include_bytes!("../../benches/data/iso2022jp.eml"));
        let sjis = sample_body(include_bytes!("../../benches/data/sjis.eml"));
        for (label, body, phrase) in [
            (
                "ISO-2022-JP",
                iso,
                "ストレージ使用率が九十一パーセントに達しました",
            ),
            (
                "Shift_JIS",
                sjis,
                "ストレージ使用率が九十一パーセントに達しました",
            ),
        ] {
            let encoding = Encoding::for_label(label.as_bytes()).unwrap();
            assert!(
                check(encoding, body),
                "{label} sample body took the slow path"
            );
            assert!(decode(label, body).unwrap().contains(phrase));
        }
        // Their RFC 2047 subjects (ISO-2022-JP, base64), as mail-parser hands words over.
        for word in [
            "GyRCIVo3WTlwIVslOSVIJWwhPCU4O0hNUU4oJCxvZ0NNJHJENiQoJF4bKEI=",
            "GyRCJDckPxsoQg==",
            "GyRCIVpDbUo4M05EaiFbJDRDbUo4JCIkaiQsJEgkJiQ0JDYkJCReJDkbKEI=",
            "GyRCIUpDbUo4SFY5ZhsoQiAyMDI1MTEyNC0wMDQyGyRCIUsbKEI=",
            "GyRCNWEwQkUqGyhC",
        ] {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(word)
                .unwrap();
            assert!(check(ISO_2022_JP, &bytes), "{word}");
        }
    }

    #[test]
    fn labels_resolve_like_encoding_rs() {
        let iso = b"\x1b$B%O%m!<\x1b(B";
        let sjis = b"\x83n\x83\x8D\x81[";
        let euc = b"\xA5\xCF\xA5\xED\xA1\xBC";
        let hello = Some("ハロー".to_owned());
        for label in [
            "ISO-2022-JP",
            "iso-2022-jp",
            "csISO2022JP",
            " \"ISO-2022-JP\" ",
        ] {
            assert_eq!(decode(label, iso), hello, "{label}");
        }
        for label in [
            "Shift_JIS",
            "shift-jis",
            "sjis",
            "x-sjis",
            "windows-31j",
            "ms932",
            "MS_Kanji",
            "csShiftJIS",
        ] {
            assert_eq!(decode(label, sjis), hello, "{label}");
        }
        for label in ["EUC-JP", "x-euc-jp", "cseucpkdfmtjapanese"] {
            assert_eq!(decode(label, euc), hello, "{label}");
        }
        // cp932 is no WHATWG label (mail-parser 1.0.1 does not know it either): not ours.
        assert_eq!(Encoding::for_label(b"cp932"), None);
        assert_eq!(decode("cp932", sjis), None);
        // Other charsets and unknown labels are never ours, even for plain ASCII.
        for label in [
            "utf-8",
            "UTF-8",
            "iso-8859-1",
            "euc-kr",
            "iso-2022-kr",
            "",
            "x-unknown",
        ] {
            assert_eq!(decode(label, b"plain"), None, "{label}");
        }
    }

    /// xorshift64*: reproducible pseudo-random inputs without a crate.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
            &items[self.below(items.len())]
        }
    }

    /// Text the way Japanese mail has it: kana, kanji, full-width and half-width forms,
    /// symbols, ASCII words and line ends, and now and then any BMP character (which the
    /// encoders turn into `&#…;` when the charset lacks it).
    fn random_text(rng: &mut Rng) -> String {
        const PIECES: &[&str] = &[
            "お世話になっております。",
            "システム監視センター",
            "【警告】",
            "（内線 1234）",
            "db-tokyo-02",
            "\r\n",
            " ",
            "ｶﾀｶﾅ",
            "①②",
            "≒∵",
            "¥100",
            "‾",
            "髙橋",
            "ﾃｽﾄ\r\n",
            "abc",
            "〜",
            "―",
            "∥",
            "－",
            "PostgreSQL 15",
            "ご注文ありがとうございます",
            "表示",
            "ソ",
            "能",
            "\\",
            "~",
        ];
        let mut text = String::new();
        for _ in 0..rng.below(12) {
            if rng.below(8) == 0 {
                let c = char::from_u32(0x20 + rng.below(0xFFDF) as u32).unwrap_or('?');
                text.push(c);
            } else {
                text.push_str(*rng.pick(PIECES));
            }
        }
        text
    }

    /// A random damage or addition: escape sequences valid and not, stray bytes, a BOM.
    fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) {
        const INSERTS: &[&[u8]] = &[
            b"\x1b(B",
            b"\x1b(J",
            b"\x1b(I",
            b"\x1b$@",
            b"\x1b$B",
            b"\x1b$A",
            b"\x1b$(D",
            b"\x1b(D",
            b"\x1b",
            b"\x1b(",
            b"\x1b$",
            b"\x0e",
            b"\x0f",
            b"\x1b(I\x31\x5f\x21",
            b"\x8e\xb1",
            b"\x8f\xb0\xa1",
            b"\xef\xbb\xbf",
            b"\xfe\xff",
            b"\xff\xfe",
            b"\x80",
            b"\xa0",
            b"\xfd",
            b"\r\n",
        ];
        let at = rng.below(bytes.len() + 1);
        match rng.below(4) {
            0 => {
                let insert = rng.pick(INSERTS);
                bytes.splice(at..at, insert.iter().copied());
            }
            1 => bytes.insert(at, rng.next() as u8),
            2 if at < bytes.len() => bytes[at] = rng.next() as u8,
            _ => {
                let insert = rng.pick(INSERTS);
                bytes.splice(0..0, insert.iter().copied());
            }
        }
    }

    #[test]
    fn random_inputs_match_encoding_rs() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let (mut total, mut some) = ([0usize; 3], [0usize; 3]);
        for round in 0..6000 {
            let which = round % 3;
            let encoding = JAPANESE[which];
            let mut bytes = encoding.encode(&random_text(&mut rng)).0.into_owned();
            // A third as the encoder wrote it, the rest damaged once or a few times.
            for _ in 0..rng.below(3) * rng.below(3) {
                mutate(&mut rng, &mut bytes);
            }
            total[which] += 1;
            some[which] += usize::from(check(encoding, &bytes));
            // Cut at every position now and then: truncated pairs and escapes.
            if round % 10 == 0 {
                for end in 0..bytes.len() {
                    check(encoding, &bytes[..end]);
                }
            }
            // Pure noise, in the bytes these charsets use.
            let noise: Vec<u8> = (0..rng.below(24))
                .map(|_| *rng.pick(b"\x1b$B(@JI!%O\x81\x83\xa1\xa5\x8e\xe0\xfc\r\n a"))
                .collect();
            check(encoding, &noise);
        }
        eprintln!("random inputs taking the fast path, of {total:?}: {some:?}");
        // Undamaged and lightly damaged text mostly takes the fast path.
        for which in 0..3 {
            assert!(
                some[which] * 3 > total[which],
                "{}: {} of {}",
                JAPANESE[which].name(),
                some[which],
                total[which]
            );
        }
    }
}
