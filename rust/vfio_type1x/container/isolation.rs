// SPDX-License-Identifier: GPL-2.0

//! The MSI isolation verdict of a group at attach: each device asked in
//! turn (`msi_isolation`, else the IRQ core).

use super::*;

/// Are the MSIs of every device in `group` isolated? Each device is asked
/// in turn, msi_isolation first, the IRQ core for a device msi_isolation
/// does not know (not PCI), until one is not isolated; `why` gets the reason
/// of the last device asked (NUL terminated).
pub(super) fn group_isolated(group: &Group, why: &mut [u8]) -> Result<bool> {
    for dev in group.devices()?.iter() {
        let isolated = match dev.msi_query(why) {
            Err(e) if e == ENODEV => {
                let isolated = dev.has_isolated_msi();
                let verdict = if isolated { "" } else { "not " };
                let name = dev.name().to_str().unwrap_or("?");
                write_cstr(
                    why,
                    format_args!("{name}: {verdict}isolated (msi_device_has_isolated_msi())"),
                );
                isolated
            }
            r => r?,
        };
        if !isolated {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Writes `args` into `buf`, truncated, NUL terminated.
fn write_cstr(buf: &mut [u8], args: core::fmt::Arguments<'_>) {
    struct Out<'a>(&'a mut [u8], usize);
    impl core::fmt::Write for Out<'_> {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            // Room for the NUL stays.
            let room = self.0.len().saturating_sub(self.1 + 1);
            let n = s.len().min(room);
            self.0[self.1..self.1 + n].copy_from_slice(&s.as_bytes()[..n]);
            self.1 += n;
            Ok(())
        }
    }
    let mut out = Out(buf, 0);
    let _ = core::fmt::write(&mut out, args);
    let end = out.1;
    if let Some(b) = buf.get_mut(end) {
        *b = 0;
    }
}

/// The text before the first NUL of `buf`.
pub(super) fn cstr_prefix(buf: &[u8]) -> &str {
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    core::str::from_utf8(&buf[..len]).unwrap_or("?")
}
