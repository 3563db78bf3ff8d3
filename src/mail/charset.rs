//! A fast path for the Japanese charsets mail actually uses (ISO-2022-JP, Shift_JIS, EUC-JP):
//! [`decode`] turns well-formed text into exactly the `String` encoding_rs would, or answers
//! `None`, and the caller then decodes the whole input with encoding_rs as before.
//!
//! Why it exists: encoding_rs (the WHATWG decoders mail-parser uses with `full_encoding`) costs
//! ~85 instructions a character on ISO-2022-JP and ~75 on Shift_JIS, most of the budget of
//! issue #9 (50,000 mails/s per core) for a 4 KiB Japanese mail. Its per-byte state machine
//! handles every malformed case; well-formed mail needs none of that, only a table look-up a
//! character and whole-run copies of ASCII.
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

/// The entry for each input of `records` decoded on its own through `encoding` (no BOM
/// handling: the fast path has already refused BOMs), with only the decoder's initial state.
/// Decoding them one call each would cost tens of thousands of calls for the two-byte tables;
/// instead they are decoded in one call, separated by `\n`, and the output split at `\n`.
/// That is sound only if every record leaves the decoder back in its initial state and the
/// separator can never be swallowed, which the caller's choice of records ensures and the
/// count check here confirms; should it ever fail (a different encoding_rs), every entry is 0
/// and the fast path always answers `None` (slow, never wrong; the tests would fail).
fn decode_records(encoding: &'static Encoding, records: &[Vec<u8>]) -> Vec<Entry> {
    let mut input = Vec::with_capacity(records.iter().map(|r| r.len() + 1).sum());
    for record in records {
        input.extend_from_slice(record);
        input.push(b'\n');
    }
    let (text, _) = encoding.decode_without_bom_handling(&input);
    let segments: Vec<&str> = text.split('\n').collect();
    // n records → n separators → n + 1 segments, the last one empty.
    if segments.len() != records.len() + 1 || segments.last() != Some(&"") {
        return vec![0; records.len()];
    }
    segments[..records.len()].iter().map(|s| entry_of(s)).collect()
}

/// The entry for `input` decoded on its own (256 of these per single-byte table: cheap).
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

/// A two-byte table indexed by `(lead & 0x7F) << 7 | (trail & 0x7F)`: 128×128 entries, of
/// which the 94×94 JIS X 0208 rows and cells (0x21..=0x7E, or 0xA1..=0xFE in EUC-JP) are
/// filled and the rest are 0, so a look-up needs no range check beyond the high bits.
type PairTable = [Entry; 128 * 128];

fn pair_index(lead: u8, trail: u8) -> usize {
    (usize::from(lead & 0x7F) << 7) | usize::from(trail & 0x7F)
}

/// A JIS X 0208 table from `encoding`, each code given as `frame(lead, trail)`, the bytes
/// being `0x21..=0x7E` plus `offset` (0 for ISO-2022-JP, 0x80 for EUC-JP).
fn jis0208_table(
    encoding: &'static Encoding,
    offset: u8,
    frame: impl Fn(u8, u8) -> Vec<u8>,
) -> Box<PairTable> {
    let codes: Vec<(u8, u8)> =
        (0x21..=0x7E).flat_map(|l| (0x21..=0x7E).map(move |t| (l + offset, t + offset))).collect();
    let records: Vec<Vec<u8>> = codes.iter().map(|&(l, t)| frame(l, t)).collect();
    let mut table = Box::new([0; 128 * 128]);
    for (&(l, t), e) in codes.iter().zip(decode_records(encoding, &records)) {
        table[pair_index(l, t)] = e;
    }
    table
}

struct Iso2022JpTables {
    jis0208: Box<PairTable>,
    /// By byte, in the `ESC ( J` state (0 for `ESC` and everything invalid).
    roman: [Entry; 256],
    /// By byte, in the `ESC ( I` state (0 for `ESC` and everything invalid).
    katakana: [Entry; 256],
}

static ISO_2022_JP_TABLES: LazyLock<Iso2022JpTables> = LazyLock::new(|| {
    // `ESC $ B l t ESC ( B`: every code is one character or one U+FFFD (WHATWG stays in the
    // two-byte state after an unmapped code), and the decoder is back in ASCII, where the
    // `\n` separator is itself and clears the "output flag" before the next `ESC $ B`.
    let jis0208 = jis0208_table(ISO_2022_JP, 0, |l, t| [TO_JIS0208, &[l, t], TO_ASCII].concat());
    let single = |escape: &[u8]| {
        let mut table = [0; 256];
        for (b, e) in (0..=255u8).zip(table.iter_mut()) {
            *e = decode_one(ISO_2022_JP, &[escape, &[b]].concat());
        }
        table
    };
    Iso2022JpTables { jis0208, roman: single(TO_ROMAN), katakana: single(TO_KATAKANA) }
});

/// Shift_JIS's lead bytes, 0x81..=0x9F and 0xE0..=0xFC (the structure of the encoding, not a
/// mapping: the characters come from encoding_rs).
fn sjis_lead_row(b: u8) -> Option<u8> {
    match b {
        0x81..=0x9F => Some(b - 0x80),
        0xE0..=0xFC => Some(b - 0xC0),
        _ => None,
    }
}

/// Rows of the Shift_JIS pair table: row 0 for "not a lead byte" (all 0), then one per lead.
const SJIS_ROWS: usize = 1 + (0x9F - 0x81 + 1) + (0xFC - 0xE0 + 1);

struct ShiftJisTables {
    /// By byte: the row of [`ShiftJisTables::pairs`] for a lead byte, 0 for any other byte.
    lead_row: [u8; 256],
    /// `row * 256 + trail`.
    pairs: Box<[Entry; SJIS_ROWS * 256]>,
    /// By byte, a non-ASCII byte that is a character on its own (half-width katakana, 0x80).
    single: [Entry; 256],
}

static SHIFT_JIS_TABLES: LazyLock<ShiftJisTables> = LazyLock::new(|| {
    let mut lead_row = [0u8; 256];
    for (b, row) in (0..=255u8).zip(lead_row.iter_mut()) {
        *row = sjis_lead_row(b).unwrap_or(0);
    }
    // Trails 0x40..=0xFF: every pair is one character, or U+FFFD possibly followed by the
    // trail itself when the trail is ASCII (WHATWG re-reads it), never more, and never a
    // pending lead; either way not one character, so 0. Trails below 0x40 are never valid
    // and are left 0 (a `\n` trail would split a record).
    let codes: Vec<(u8, u8)> = (0x80..=0xFFu8)
        .filter(|&l| sjis_lead_row(l).is_some())
        .flat_map(|l| (0x40..=0xFFu8).map(move |t| (l, t)))
        .collect();
    let records: Vec<Vec<u8>> = codes.iter().map(|&(l, t)| vec![l, t]).collect();
    let mut pairs = Box::new([0; SJIS_ROWS * 256]);
    for (&(l, t), e) in codes.iter().zip(decode_records(SHIFT_JIS, &records)) {
        pairs[usize::from(lead_row[usize::from(l)]) * 256 + usize::from(t)] = e;
    }
    let mut single = [0; 256];
    for (b, e) in (0x80..=0xFFu8).zip(single[0x80..].iter_mut()) {
        // A lead byte alone is a truncated pair (U+FFFD): 0, as it must be.
        *e = decode_one(SHIFT_JIS, &[b]);
    }
    ShiftJisTables { lead_row, pairs, single }
});

struct EucJpTables {
    jis0208: Box<PairTable>,
    /// By second byte, `0x8E` + that byte (half-width katakana).
    katakana: [Entry; 256],
}

static EUC_JP_TABLES: LazyLock<EucJpTables> = LazyLock::new(|| {
    // Lead and trail 0xA1..=0xFE: one character or one U+FFFD each (both bytes consumed).
    let jis0208 = jis0208_table(EUC_JP, 0x80, |l, t| vec![l, t]);
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
/// growth checks of `String::push`.
struct Out {
    buf: Vec<u8>,
    len: usize,
}

/// Room past the last character for the whole-entry and whole-word stores.
const SLACK: usize = 8;

impl Out {
    /// No input byte of these charsets becomes more than 3 bytes of UTF-8 (half-width
    /// katakana: 1 → 3; two-byte codes: 2 → at most 3).
    fn for_input(len: usize) -> Option<Out> {
        Some(Out { buf: vec![0; len.checked_mul(3)?.checked_add(SLACK)?], len: 0 })
    }

    /// Appends one table entry. `None` (never expected, the buffer is sized for the worst
    /// case) only makes the caller fall back instead of panicking.
    #[inline(always)]
    fn put(&mut self, e: Entry) -> Option<()> {
        self.buf.get_mut(self.len..self.len + 4)?.copy_from_slice(&e.to_le_bytes());
        self.len += (e >> 24) as usize;
        Some(())
    }

    fn finish(mut self) -> Option<String> {
        self.buf.truncate(self.len);
        // Everything written is whole UTF-8 characters (entries made by `char::encode_utf8`
        // and ASCII bytes), so this check never fails; it is kept, at ~0.1 instructions a
        // byte, so that a bug here could only ever cost the fallback, not a wrong string.
        String::from_utf8(self.buf).ok()
    }
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// High bit set in each byte of `v` that is zero, and possibly in bytes above (later than)
/// the first zero byte (borrows only propagate upwards), so its lowest set bit is exact.
#[inline(always)]
fn zero_bytes(v: u64) -> u64 {
    v.wrapping_sub(LO) & !v & HI
}

/// Copies the run of ASCII starting at `bytes[i]` and returns where it ends: at the end of
/// input or at the first non-ASCII byte, and also, with `ISO` (ISO-2022-JP's ASCII state),
/// at the first `ESC`, `SO` or `SI` (0x1B, 0x0E, 0x0F: the escape, and the shifts WHATWG
/// rejects). Eight bytes at a time: mail text is mostly runs of ASCII, and in ISO-2022-JP
/// every line is at least a run `ESC ( B` … `\r\n`.
#[inline(always)]
fn copy_ascii<const ISO: bool>(bytes: &[u8], mut i: usize, out: &mut Out) -> Option<usize> {
    while let Some(chunk) = bytes.get(i..i + 8) {
        let word: [u8; 8] = chunk.try_into().ok()?;
        let w = u64::from_le_bytes(word);
        let mut stop = w & HI;
        if ISO {
            stop |= zero_bytes(w ^ (LO * u64::from(ESC))) | zero_bytes((w & !LO) ^ (LO * 0x0E));
        }
        // The whole word goes out even when the run ends inside it: the bytes past the run
        // are overwritten by what follows it (or cut off), and `len` only counts the run.
        out.buf.get_mut(out.len..out.len + 8)?.copy_from_slice(&word);
        if stop != 0 {
            let n = (stop.trailing_zeros() / 8) as usize;
            out.len += n;
            return Some(i + n);
        }
        out.len += 8;
        i += 8;
    }
    while let Some(&b) = bytes.get(i) {
        if b >= 0x80 || (ISO && (b == ESC || b == 0x0E || b == 0x0F)) {
            break;
        }
        *out.buf.get_mut(out.len)? = b;
        out.len += 1;
        i += 1;
    }
    Some(i)
}

// ------------------------------------------------------------------------------ decoders

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
    let mut out = Out::for_input(bytes.len())?;
    let mut state = IsoState::Ascii;
    let mut i = 0;
    let mut escaped = false;
    loop {
        let run_start = i;
        match state {
            IsoState::Ascii => i = copy_ascii::<true>(bytes, i, &mut out)?,
            IsoState::Roman | IsoState::Katakana => {
                let table = if let IsoState::Roman = state { &tables.roman } else { &tables.katakana };
                // `ESC` has no entry, so the run stops there, as at any invalid byte.
                while let Some(&b) = bytes.get(i) {
                    let e = table[usize::from(b)];
                    if e == 0 {
                        break;
                    }
                    out.put(e)?;
                    i += 1;
                }
            }
            IsoState::Jis0208 => {
                // A byte with the high bit set is invalid; both below 0x80 index the table,
                // where invalid bytes (`ESC` among them) and unmapped codes have no entry.
                while let Some(&[lead, trail]) = bytes.get(i..i + 2) {
                    if (lead | trail) >= 0x80 {
                        break;
                    }
                    let e = tables.jis0208[pair_index(lead, trail)];
                    if e == 0 {
                        break;
                    }
                    out.put(e)?;
                    i += 2;
                }
            }
        }
        // The run ended: at the end of input (fine in every state: a run never ends inside a
        // pair, a lone byte left over is seen below), or at an escape sequence, or at a byte
        // the state rejects.
        let Some(&b) = bytes.get(i) else { break };
        if b != ESC {
            return None;
        }
        // WHATWG's output flag: an escape sequence right after another is an error (U+FFFD).
        if escaped && i == run_start {
            return None;
        }
        state = match bytes.get(i..i + 3)? {
            s if s == TO_ASCII => IsoState::Ascii,
            s if s == TO_ROMAN => IsoState::Roman,
            s if s == TO_KATAKANA => IsoState::Katakana,
            s if s == TO_JIS0208 || s == b"\x1b$@" => IsoState::Jis0208,
            _ => return None,
        };
        escaped = true;
        i += 3;
    }
    out.finish()
}

/// Shift_JIS: pairs while they come, ASCII runs and single-byte characters in between.
fn shift_jis(bytes: &[u8]) -> Option<String> {
    let tables = &*SHIFT_JIS_TABLES;
    let mut out = Out::for_input(bytes.len())?;
    let mut i = 0;
    loop {
        // A non-lead byte is row 0, all 0: the loop stops for ASCII and single bytes as well
        // as for bad or unmapped pairs.
        while let Some(&[lead, trail]) = bytes.get(i..i + 2) {
            let row = usize::from(tables.lead_row[usize::from(lead)]);
            let e = tables.pairs.get(row * 256 + usize::from(trail)).copied().unwrap_or(0);
            if e == 0 {
                break;
            }
            out.put(e)?;
            i += 2;
        }
        let Some(&b) = bytes.get(i) else { break };
        if b < 0x80 {
            i = copy_ascii::<false>(bytes, i, &mut out)?;
            continue;
        }
        // Half-width katakana or 0x80; a lead byte here (bad trail, unmapped, or the last
        // byte) or an invalid byte has no entry.
        let e = tables.single[usize::from(b)];
        if e == 0 {
            return None;
        }
        out.put(e)?;
        i += 1;
    }
    out.finish()
}

/// EUC-JP: JIS X 0208 pairs (both bytes 0xA1..=0xFE), `0x8E` + half-width katakana, ASCII.
/// JIS X 0212 (`0x8F` + two bytes) is rare in mail and is left to encoding_rs.
fn euc_jp(bytes: &[u8]) -> Option<String> {
    let tables = &*EUC_JP_TABLES;
    let mut out = Out::for_input(bytes.len())?;
    let mut i = 0;
    loop {
        // Both high bits set, then the table has entries only for 0xA1..=0xFE both.
        while let Some(&[lead, trail]) = bytes.get(i..i + 2) {
            if (lead & trail) < 0x80 {
                break;
            }
            let e = tables.jis0208[pair_index(lead, trail)];
            if e == 0 {
                break;
            }
            out.put(e)?;
            i += 2;
        }
        let Some(&b) = bytes.get(i) else { break };
        if b < 0x80 {
            i = copy_ascii::<false>(bytes, i, &mut out)?;
            continue;
        }
        if b != 0x8E {
            return None;
        }
        let e = tables.katakana[usize::from(*bytes.get(i + 1)?)];
        if e == 0 {
            return None;
        }
        out.put(e)?;
        i += 2;
    }
    out.finish()
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
        let mut streamed = String::with_capacity(decoder.max_utf8_buffer_length(bytes.len()).unwrap());
        let (result, read, _) = decoder.decode_to_string(bytes, &mut streamed, true);
        assert_eq!((result, read), (encoding_rs::CoderResult::InputEmpty, bytes.len()));
        assert_eq!(text, streamed, "encoding_rs's two entry points disagree on {bytes:02x?}");
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
        assert!(some_in_range > 6879, "only {some_in_range} codes decoded by the fast path");
        // `ESC $ @` (JIS C 6226-1978) selects the same table.
        assert!(check(ISO_2022_JP, b"\x1b$@%O%m!<\x1b(B"));
    }

    #[test]
    fn every_shift_jis_pair() {
        let mut some = 0;
        for lead in 0..=255u8 {
            for trail in 0..=255u8 {
                some += usize::from(check(SHIFT_JIS, &[lead, trail]));
            }
        }
        // At least the 6,879 JIS X 0208 characters as pairs (the rest that answer are ASCII
        // and half-width katakana combinations, and the user-defined area).
        assert!(some > 6879 + 128 * 128, "only {some} pairs decoded by the fast path");
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
        assert!(some_jis0208 > 6879, "only {some_jis0208} codes decoded by the fast path");
        // Half-width katakana: all 63 of 0x8E 0xA1..=0xDF.
        assert_eq!((0xA1..=0xDFu8).filter(|&b| check(EUC_JP, &[0x8E, b])).count(), 63);
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
                check(ISO_2022_JP, &[escape, &[b, b], TO_ASCII, b"0123456789"].concat());
            }
        }
        // Every ASCII byte but ESC/SO/SI, every JIS X 0201 Roman and katakana byte answers.
        let ascii: Vec<u8> = (0..0x80).filter(|b| ![0x0E, 0x0F, ESC].contains(b)).collect();
        assert!(check(ISO_2022_JP, &ascii));
        assert!(check(ISO_2022_JP, &[TO_ROMAN, &ascii].concat()));
        assert!(check(ISO_2022_JP, &[TO_KATAKANA, &(0x21..=0x5F).collect::<Vec<u8>>()].concat()));
        let all_ascii: Vec<u8> = (0..0x80).collect();
        assert!(check(SHIFT_JIS, &all_ascii) && check(EUC_JP, &all_ascii));
        assert!(check(SHIFT_JIS, &(0xA1..=0xDF).chain([0x80]).collect::<Vec<u8>>()));
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
        for bad in [&b"\x1b$A%O"[..], b"\x1b$(D%O", b"\x1b(D", b"\x1b", b"\x1b(", b"\x1b$B%", b"\x1b$B%\x1b(B"] {
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
        // EUC-JP: EF BB BF would be a kanji and a truncated pair, but encoding_rs reads UTF-8.
        assert!(!check(EUC_JP, "\u{FEFF}注意".as_bytes()));
    }

    /// The sample mails of `benches/mime.rs`, bodies as sent (7bit/8bit: no transfer decoding).
    fn sample_body(raw: &[u8]) -> &[u8] {
        let at = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a header/body separator");
        &raw[at + 4..]
    }

    #[test]
    fn bench_samples_take_the_fast_path() {
        let iso = sample_body(include_bytes!("../../benches/data/iso2022jp.eml"));
        let sjis = sample_body(include_bytes!("../../benches/data/sjis.eml"));
        for (label, body, phrase) in [
            ("ISO-2022-JP", iso, "ストレージ使用率が九十一パーセントに達しました"),
            ("Shift_JIS", sjis, "ストレージ使用率が九十一パーセントに達しました"),
        ] {
            let encoding = Encoding::for_label(label.as_bytes()).unwrap();
            assert!(check(encoding, body), "{label} sample body took the slow path");
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
            let bytes = base64::engine::general_purpose::STANDARD.decode(word).unwrap();
            assert!(check(ISO_2022_JP, &bytes), "{word}");
        }
    }

    #[test]
    fn labels_resolve_like_encoding_rs() {
        let iso = b"\x1b$B%O%m!<\x1b(B";
        let sjis = b"\x83n\x83\x8D\x81[";
        let euc = b"\xA5\xCF\xA5\xED\xA1\xBC";
        let hello = Some("ハロー".to_owned());
        for label in ["ISO-2022-JP", "iso-2022-jp", "csISO2022JP", " \"ISO-2022-JP\" "] {
            assert_eq!(decode(label, iso), hello, "{label}");
        }
        for label in ["Shift_JIS", "shift-jis", "sjis", "x-sjis", "windows-31j", "ms932", "MS_Kanji", "csShiftJIS"] {
            assert_eq!(decode(label, sjis), hello, "{label}");
        }
        for label in ["EUC-JP", "x-euc-jp", "cseucpkdfmtjapanese"] {
            assert_eq!(decode(label, euc), hello, "{label}");
        }
        // cp932 is no WHATWG label (mail-parser 1.0.1 does not know it either): not ours.
        assert_eq!(Encoding::for_label(b"cp932"), None);
        assert_eq!(decode("cp932", sjis), None);
        // Other charsets and unknown labels are never ours, even for plain ASCII.
        for label in ["utf-8", "UTF-8", "iso-8859-1", "euc-kr", "iso-2022-kr", "", "x-unknown"] {
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
            "お世話になっております。", "システム監視センター", "【警告】", "（内線 1234）", "db-tokyo-02",
            "\r\n", " ", "ｶﾀｶﾅ", "①②", "≒∵", "¥100", "‾", "髙橋", "ﾃｽﾄ\r\n", "abc", "〜", "―", "∥", "－",
            "PostgreSQL 15", "ご注文ありがとうございます", "表示", "ソ", "能", "\\", "~",
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
            b"\x1b(B", b"\x1b(J", b"\x1b(I", b"\x1b$@", b"\x1b$B", b"\x1b$A", b"\x1b$(D", b"\x1b(D",
            b"\x1b", b"\x1b(", b"\x1b$", b"\x0e", b"\x0f", b"\x1b(I\x31\x5f\x21", b"\x8e\xb1", b"\x8f\xb0\xa1",
            b"\xef\xbb\xbf", b"\xfe\xff", b"\xff\xfe", b"\x80", b"\xa0", b"\xfd", b"\r\n",
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
            let noise: Vec<u8> = (0..rng.below(24)).map(|_| *rng.pick(b"\x1b$B(@JI!%O\x81\x83\xa1\xa5\x8e\xe0\xfc\r\n a")).collect();
            check(encoding, &noise);
        }
        // Undamaged and lightly damaged text mostly takes the fast path.
        for which in 0..3 {
            assert!(some[which] * 3 > total[which], "{}: {} of {}", JAPANESE[which].name(), some[which], total[which]);
        }
    }
}
