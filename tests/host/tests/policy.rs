// SPDX-License-Identifier: GPL-2.0

//! Parsing and matching of the assert_isolated / deny_isolated parameters.

use armsi_logic::policy::{decide, entries, is_pci_address, validate, BadEntry, Entry};
use armsi_logic::verdict::Override;

fn virt(c: &str) -> bool {
    c == "linux,dummy-virt"
}

#[test]
fn pci_addresses() {
    for ok in ["0000:00:01.0", "abcd:ff:1f.7", "0000:0A:00.3"] {
        assert!(is_pci_address(ok), "{ok}");
    }
    for bad in [
        "",
        "0000:00:01",
        "0000:00:01.8",
        "000:00:01.0",
        "0000-00:01.0",
        "0000:00:01.0 ",
        "g000:00:01.0",
        "0000:00:001.0",
    ] {
        assert!(!is_pci_address(bad), "{bad:?}");
    }
}

#[test]
fn lists_parse_and_skip_empty_items() {
    let got: Vec<_> = entries(" 0000:00:01.0;;platform:linux,dummy-virt;\n")
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    assert_eq!(
        got,
        vec![
            Entry::Device("0000:00:01.0"),
            Entry::Platform("linux,dummy-virt")
        ]
    );
    assert_eq!(validate(""), Ok(()));
    assert_eq!(validate("platform:"), Err(BadEntry("platform:")));
    assert_eq!(validate("0000:00:01.0;eth0"), Err(BadEntry("eth0")));
    // A comma is not a separator.
    assert_eq!(
        validate("0000:00:01.0,0000:00:02.0"),
        Err(BadEntry("0000:00:01.0,0000:00:02.0"))
    );
}

#[test]
fn decide_device_and_platform() {
    assert_eq!(decide("", "", "0000:00:01.0", &virt), None);
    assert_eq!(
        decide("0000:00:01.0", "", "0000:00:01.0", &virt),
        Some(Override::Assert)
    );
    assert_eq!(decide("0000:00:01.0", "", "0000:00:02.0", &virt), None);
    // Case of the hex digits does not matter.
    assert_eq!(
        decide("0000:00:0A.0", "", "0000:00:0a.0", &virt),
        Some(Override::Assert)
    );
    assert_eq!(
        decide("platform:linux,dummy-virt", "", "0000:00:02.0", &virt),
        Some(Override::Assert)
    );
    assert_eq!(
        decide("platform:vendor,other", "", "0000:00:02.0", &virt),
        None
    );
}

#[test]
fn deny_wins() {
    assert_eq!(
        decide("0000:00:01.0", "0000:00:01.0", "0000:00:01.0", &virt),
        Some(Override::Deny)
    );
}
