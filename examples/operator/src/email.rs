//! RFC 5322 messages and a Maildir outbox: what `send_email` checks,
//! writes and where.

use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;

/// Longest address accepted (RFC 5321's path limit less the brackets).
const MAX_ADDRESS: usize = 254;
/// Longest local part (RFC 5321).
const MAX_LOCAL_PART: usize = 64;
/// Longest subject, in characters.
pub const MAX_SUBJECT_CHARS: usize = 200;
/// Largest body, in bytes.
pub const MAX_BODY_BYTES: usize = 32 * 1024;
/// Longest body line in bytes, without its CRLF (RFC 5322 section 2.1.1).
const MAX_LINE_BYTES: usize = 998;

/// Checks a bare address `local@domain`: a dot-atom local part and a
/// domain of letter-digit-hyphen labels. Display names, quoted local parts
/// and address literals are refused.
pub fn check_address(address: &str) -> Result<(), String> {
    let refuse = |why: &str| Err(format!("'{}' is not an address: {why}", printable(address)));
    if address.len() > MAX_ADDRESS {
        return refuse("too long");
    }
    let Some((local, domain)) = address.rsplit_once('@') else {
        return refuse("no @");
    };
    if local.is_empty() || local.len() > MAX_LOCAL_PART || !is_dot_atom(local) {
        return refuse("bad local part");
    }
    if !is_domain(domain) {
        return refuse("bad domain");
    }
    Ok(())
}

/// `atext` runs separated by single dots (RFC 5322 section 3.2.3).
fn is_dot_atom(text: &str) -> bool {
    text.split('.').all(|atom| {
        !atom.is_empty()
            && atom
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b))
    })
}

/// Dot-separated labels of letters, digits and inner hyphens, at least two.
fn is_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Checks a subject: no CR or LF (header injection), no other control
/// character, at most [`MAX_SUBJECT_CHARS`] characters.
pub fn check_subject(subject: &str) -> Result<(), String> {
    if subject.contains(['\r', '\n']) {
        return Err("the subject contains CR or LF".into());
    }
    if subject.chars().any(char::is_control) {
        return Err("the subject contains a control character".into());
    }
    if subject.chars().count() > MAX_SUBJECT_CHARS {
        return Err(format!(
            "the subject is longer than {MAX_SUBJECT_CHARS} characters"
        ));
    }
    Ok(())
}

/// Checks a body: at most [`MAX_BODY_BYTES`], no NUL, no CR other than in
/// CRLF, lines of at most 998 bytes.
pub fn check_body(body: &str) -> Result<(), String> {
    if body.len() > MAX_BODY_BYTES {
        return Err(format!("the body is larger than {MAX_BODY_BYTES} bytes"));
    }
    if body.contains('\0') {
        return Err("the body contains NUL".into());
    }
    if body.replace("\r\n", "\n").contains('\r') {
        return Err("the body contains a CR outside CRLF".into());
    }
    if body.lines().any(|line| line.len() > MAX_LINE_BYTES) {
        return Err(format!("a body line is longer than {MAX_LINE_BYTES} bytes"));
    }
    Ok(())
}

/// A message's header fields and body, checked.
pub struct Message<'a> {
    /// Sender address.
    pub from: &'a str,
    /// Recipient address.
    pub to: &'a str,
    /// Subject text.
    pub subject: &'a str,
    /// Body text (LF or CRLF line ends).
    pub body: &'a str,
    /// `Message-ID` without angle brackets.
    pub message_id: &'a str,
    /// `Date`, RFC 5322 form.
    pub date: &'a str,
}

impl Message<'_> {
    /// The message as RFC 5322 bytes: CRLF line ends, UTF-8 text/plain.
    #[must_use]
    pub fn render(&self) -> Vec<u8> {
        let encoding = if self.subject.is_ascii() && self.body.is_ascii() {
            "7bit"
        } else {
            "8bit"
        };
        let mut out = String::new();
        for (name, value) in [
            ("From", self.from.to_owned()),
            ("To", self.to.to_owned()),
            ("Subject", encode_header_text(self.subject)),
            ("Date", self.date.to_owned()),
            ("Message-ID", format!("<{}>", self.message_id)),
            ("MIME-Version", "1.0".to_owned()),
            ("Content-Type", "text/plain; charset=utf-8".to_owned()),
            ("Content-Transfer-Encoding", encoding.to_owned()),
        ] {
            out.push_str(name);
            out.push_str(": ");
            out.push_str(&value);
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
        for line in self.body.lines() {
            out.push_str(line);
            out.push_str("\r\n");
        }
        out.into_bytes()
    }
}

/// ASCII text as it is; other text as RFC 2047 `B` encoded words of at
/// most 75 characters, folded onto continuation lines.
fn encode_header_text(text: &str) -> String {
    if text.is_ascii() {
        return text.to_owned();
    }
    // 42 bytes of UTF-8 make 56 base64 characters, 68 with the framing:
    // "Subject: " and the first word fit in 78.
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in text.chars() {
        if chunk.len() + c.len_utf8() > 42 {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    words.push(chunk);
    words
        .iter()
        .map(|w| {
            format!(
                "=?utf-8?B?{}?=",
                base64::engine::general_purpose::STANDARD.encode(w)
            )
        })
        .collect::<Vec<_>>()
        .join("\r\n ")
}

/// Text safe to quote in an error message.
fn printable(text: &str) -> String {
    text.chars().take(80).flat_map(char::escape_debug).collect()
}

/// A Maildir (`tmp/`, `new/`, `cur/`) that messages are delivered into.
pub struct Maildir {
    root: PathBuf,
}

impl Maildir {
    /// The Maildir at `root` (created at the first delivery).
    #[must_use]
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// Its root.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Delivers one message: writes it into `tmp/` and syncs it, renames
    /// it into `new/` and syncs `new/`. Returns its path in `new/`.
    pub fn deliver(&self, message: &[u8]) -> std::io::Result<PathBuf> {
        for sub in ["tmp", "new", "cur"] {
            fs::create_dir_all(self.root.join(sub))?;
        }
        let name = unique_name();
        let tmp = self.root.join("tmp").join(&name);
        let new = self.root.join("new").join(&name);
        let mut file = File::options().write(true).create_new(true).open(&tmp)?;
        file.write_all(message)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, &new)?;
        File::open(self.root.join("new"))?.sync_all()?;
        Ok(new)
    }

    /// The names of the messages in `new/`, sorted.
    pub fn new_messages(&self) -> std::io::Result<Vec<String>> {
        let mut names = match fs::read_dir(self.root.join("new")) {
            Ok(dir) => dir
                .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect::<Result<Vec<_>, _>>()?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        names.sort();
        Ok(names)
    }
}

/// A Maildir file name: `SECONDS.MmicrosPpidQseq.HOST`, unique per
/// delivery (never derived from the request, so that a second delivery of
/// the same message shows as a second file).
fn unique_name() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let now = chrono::Utc::now();
    format!(
        "{}.M{}P{}Q{}.{}",
        now.timestamp(),
        now.timestamp_subsec_micros(),
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed),
        host_name()
    )
}

/// The host name, with `/` and `:` (which Maildir names cannot hold)
/// escaped as `\057` and `\072`; `localhost` when unknown.
fn host_name() -> String {
    let name = fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let name = if name.is_empty() {
        "localhost".to_owned()
    } else {
        name
    };
    name.replace('/', "\\057").replace(':', "\\072")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn addresses_are_bare_dot_atoms_at_domains() {
        for good in ["a@example.org", "first.last+tag@mail.example-1.com"] {
            assert_eq!(check_address(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "a",
            "@example.org",
            "a@",
            "a@localhost",
            "a..b@example.org",
            ".a@example.org",
            "a@-x.org",
            "Name <a@example.org>",
            "a@example.org\r\nBcc: victim@example.org",
            "a b@example.org",
        ] {
            assert!(check_address(bad).is_err(), "{bad:?}");
        }
        assert!(check_address(&format!("{}@example.org", "a".repeat(65))).is_err());
    }

    #[test]
    fn subjects_and_bodies_cannot_inject_headers() {
        assert!(check_subject("hello").is_ok());
        assert!(check_subject("héllo ✓").is_ok());
        assert!(check_subject("hi\r\nBcc: x@example.org").is_err());
        assert!(check_subject("hi\nBcc: x@example.org").is_err());
        assert!(check_subject("tab\tin").is_err());
        assert!(check_subject(&"s".repeat(201)).is_err());
        assert!(check_body("line 1\nline 2\r\nline 3").is_ok());
        assert!(check_body("bare\rCR").is_err());
        assert!(check_body(&"x".repeat(MAX_BODY_BYTES + 1)).is_err());
        assert!(check_body(&"x".repeat(999)).is_err());
    }

    #[test]
    fn a_message_has_crlf_lines_and_encoded_non_ascii_subjects() {
        let subject = "é".repeat(40);
        let message = Message {
            from: "ops@example.org",
            to: "a@example.org",
            subject: &subject,
            body: "one\ntwo",
            message_id: "k@example.org",
            date: "Sun, 6 Dec 2026 11:24:00 +0000",
        };
        let text = String::from_utf8(message.render()).unwrap();
        assert!(text.ends_with("\r\n\r\none\r\ntwo\r\n"));
        assert!(!text.replace("\r\n", "").contains(['\r', '\n']));
        assert!(text.contains("Subject: =?utf-8?B?"));
        assert!(text.contains("?=\r\n =?utf-8?B?"));
        assert!(text.split("\r\n").all(|line| line.len() <= 78));
        assert!(text.contains("Content-Transfer-Encoding: 8bit\r\n"));
    }

    #[test]
    fn delivery_goes_through_tmp_into_new() {
        let dir = tempfile::tempdir().unwrap();
        let maildir = Maildir::new(dir.path().join("outbox"));
        assert_eq!(maildir.new_messages().unwrap(), Vec::<String>::new());
        let a = maildir.deliver(b"A: b\r\n\r\nx\r\n").unwrap();
        let b = maildir.deliver(b"A: b\r\n\r\nx\r\n").unwrap();
        assert_ne!(a, b);
        assert_eq!(maildir.new_messages().unwrap().len(), 2);
        assert_eq!(
            fs::read_dir(dir.path().join("outbox/tmp")).unwrap().count(),
            0
        );
    }
}
