// SPDX-License-Identifier: GPL-2.0

//! The platform policy in the `assert_isolated` and `deny_isolated` module
//! parameters.
//!
//! Pure logic, free of kernel dependencies (see `verdict.rs`).
//!
//! Each parameter is a list of entries separated by `;` (not `,`: device-tree
//! compatible strings contain commas):
//! - a PCI device address, `0000:00:01.0` (domain:bus:device.function, hex),
//! - `platform:<compatible>`: every device, when the machine's device tree
//!   root is compatible with `<compatible>` (e.g. `platform:linux,dummy-virt`).
//!
//! `deny_isolated` wins over `assert_isolated`.

use crate::verdict::Override;

/// An entry of a policy list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry<'a> {
    /// A PCI device by address.
    Device(&'a str),
    /// Every device of a platform, by device-tree compatible.
    Platform(&'a str),
}

/// A malformed entry, with the offending text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadEntry<'a>(pub &'a str);

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Is `s` a PCI address as the kernel names devices (`dddd:bb:dd.f`)?
pub fn is_pci_address(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() == 12
        && is_hex(&s[0..4], 4)
        && b[4] == b':'
        && is_hex(&s[5..7], 2)
        && b[7] == b':'
        && is_hex(&s[8..10], 2)
        && b[10] == b'.'
        && (b'0'..=b'7').contains(&b[11])
}

/// Parses one entry.
pub fn parse_entry(tok: &str) -> Result<Entry<'_>, BadEntry<'_>> {
    if let Some(compat) = tok.strip_prefix("platform:") {
        if compat.is_empty() || compat.contains(char::is_whitespace) {
            return Err(BadEntry(tok));
        }
        return Ok(Entry::Platform(compat));
    }
    if is_pci_address(tok) {
        Ok(Entry::Device(tok))
    } else {
        Err(BadEntry(tok))
    }
}

/// The entries of a list; empty items (`a;;b`, a trailing `;`, a trailing
/// newline) are skipped.
pub fn entries(list: &str) -> impl Iterator<Item = Result<Entry<'_>, BadEntry<'_>>> {
    list.split(';')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(parse_entry)
}

/// Checks a whole list; the first malformed entry is the error.
pub fn validate(list: &str) -> Result<(), BadEntry<'_>> {
    for e in entries(list) {
        e?;
    }
    Ok(())
}

/// Does `list` name device `dev` (directly or through its platform)?
/// Malformed entries never match (lists are validated at load).
pub fn names(list: &str, dev: &str, platform_is: &dyn Fn(&str) -> bool) -> bool {
    entries(list).any(|e| match e {
        Ok(Entry::Device(d)) => d.eq_ignore_ascii_case(dev),
        Ok(Entry::Platform(c)) => platform_is(c),
        Err(_) => false,
    })
}

/// The override for `dev`, if a parameter names it.
pub fn decide(
    assert: &str,
    deny: &str,
    dev: &str,
    platform_is: &dyn Fn(&str) -> bool,
) -> Option<Override> {
    if names(deny, dev, platform_is) {
        Some(Override::Deny)
    } else if names(assert, dev, platform_is) {
        Some(Override::Assert)
    } else {
        None
    }
}
