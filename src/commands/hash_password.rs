//! `mail2line hash-password`: the password from stdin (not echoed on a terminal), its argon2id
//! hash on stdout for `[[smtp.users]] password_hash`. The hashing itself is `smtp::auth`'s, the
//! same code that checks the password at AUTH.
//!
//! Exit status: 0 printed, 1 the password could not be read, 65 (EX_DATAERR) it cannot be hashed.

use std::io::{IsTerminal, Read};

use super::output::{EX_DATAERR, EX_FAILURE};

/// Runs the command; returns the exit status.
pub fn main() -> u8 {
    let password = if std::io::stdin().is_terminal() {
        eprint!("Password (not shown): ");
        match rpassword::read_password() {
            Ok(p) => p,
            Err(e) => {
                eprintln!("mail2line: cannot read the password: {e}");
                return EX_FAILURE;
            }
        }
    } else {
        let mut raw = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut raw) {
            eprintln!("mail2line: cannot read the password from stdin (is it UTF-8?): {e}");
            return EX_FAILURE;
        }
        without_line_end(&raw).to_owned()
    };
    match crate::smtp::auth::hash_password(&password) {
        Ok(hash) => {
            println!("{hash}");
            0
        }
        Err(e) => {
            eprintln!("mail2line: {e}; give the password on stdin, e.g.: echo -n PASSWORD | mail2line hash-password");
            EX_DATAERR
        }
    }
}

/// `echo PASSWORD |` adds a newline that is not part of the password: one `\n` or `\r\n` is cut.
fn without_line_end(raw: &str) -> &str {
    let trimmed = raw.strip_suffix('\n').unwrap_or(raw);
    trimmed.strip_suffix('\r').unwrap_or(trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_end_is_cut() {
        assert_eq!(without_line_end("pw\n"), "pw");
        assert_eq!(without_line_end("pw\r\n"), "pw");
        assert_eq!(without_line_end("pw\n\n"), "pw\n");
        assert_eq!(without_line_end(" pw "), " pw ");
    }
}
