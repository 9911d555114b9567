// SPDX-License-Identifier: GPL-2.0

//! `edu_l2`: a test-only PCI driver for QEMU's `edu` device (1234:11e8).
//!
//! It is meant to run inside a nested KVM guest (L2) to which edu is assigned with VFIO, and is
//! tested directly in the project's QEMU guest (L1), where edu sits behind an SMMUv3. On probe it
//! proves that the device's MSIs and DMA reach the guest that owns it:
//!
//! 1. enables memory decoding and bus mastering and maps BAR0 (1 MiB), then checks the id
//!    register (0x010000ed) and the liveness register (reads back the complement);
//! 2. sets the DMA mask to `dma_bits` bits (default 40);
//! 3. allocates exactly one MSI vector and requests it; the hard IRQ handler reads the interrupt
//!    status (0x24), acknowledges those bits (0x64) and counts the interrupt;
//! 4. raises `irqs` interrupts (default 100) one at a time through 0x60 and waits up to 1 s for
//!    each to be counted (it gives up after 3 consecutive misses);
//! 5. does one DMA round trip through an 8 KiB coherent buffer: the first 4 KiB (a pattern) to
//!    edu's buffer at device address 0x40000, then back into the second 4 KiB, and compares;
//! 6. keeps the MSI allocated (and so mapped in the ITS) for `hold_ms` more, so that a live view
//!    on the host can show it (default 0);
//! 7. frees the IRQ, then the vector, then the BAR, and prints one line for scripts to grep:
//!
//! ```text
//! edu_l2: RESULT type=msi vectors=1 irqs=<got>/<wanted> dma=<ok|mismatch|timeout|error> dma_addr=<hex>
//! ```
//!
//! Everything is set up and torn down within probe: the IRQ registration borrows the vector
//! allocation, so the two cannot both live in the driver's data without a self-reference. The
//! device stays bound (and, as the kernel crate has no `pci_disable_device()`, enabled) until
//! unbind, which only frees a DMA buffer kept because its transfer timed out.
//!
//! Probe succeeds whatever the counts, so the line is always printed. A set-up failure prints
//! `edu_l2: RESULT error=<what> errno=<n>` and fails the probe with that error; `<what>` is one
//! of `enable`, `ioremap`, `id`, `liveness`, `dma_mask`, `msi_vectors`, `msi_vector`,
//! `request_irq`, and `<n>` is the negative errno (e.g. -28 when no MSI vector is left).
//!
//! QEMU's edu masks DMA addresses with its `dma_mask` property (28 bits by default): with an
//! IOMMU in front of it, load with `dma_bits=28` unless the device was created with a wider
//! `dma_mask`, or the IOVA is truncated and the round trip reports `dma=mismatch`.
//!
//! Register map: QEMU docs/specs/edu.rst.

use kernel::{
    device::Core,
    dma::{
        Coherent,
        CoherentBox,
        Device as _,
        DmaAddress,
        DmaMask, //
    },
    io::{
        io_project,
        io_read,
        poll::read_poll_timeout,
        Io, //
    },
    irq::{
        self,
        IrqReturn, //
    },
    pci,
    prelude::*,
    sync::atomic::{
        Acquire,
        Atomic,
        Relaxed,
        Release, //
    },
    time::Delta, //
};

/// edu's registers (byte offsets into BAR0).
mod regs {
    /// Identification, reads [`ID_VALUE`].
    pub(super) const ID: usize = 0x00;
    /// Liveness check: reads back the complement of the last value written.
    pub(super) const LIVENESS: usize = 0x04;
    /// Interrupt status (read only).
    pub(super) const IRQ_STATUS: usize = 0x24;
    /// Interrupt raise: sets the written bits in the status and raises the interrupt.
    pub(super) const IRQ_RAISE: usize = 0x60;
    /// Interrupt acknowledge: clears the written bits in the status.
    pub(super) const IRQ_ACK: usize = 0x64;
    /// DMA source address.
    pub(super) const DMA_SRC: usize = 0x80;
    /// DMA destination address.
    pub(super) const DMA_DST: usize = 0x88;
    /// DMA transfer size in bytes.
    pub(super) const DMA_COUNT: usize = 0x90;
    /// DMA command, see the `CMD_*` bits.
    pub(super) const DMA_CMD: usize = 0x98;

    /// The value of [`ID`]: version 1.0, magic 0xed.
    pub(super) const ID_VALUE: u32 = 0x0100_00ed;
    /// [`DMA_CMD`]: start the transfer; reads as set while it is running.
    pub(super) const CMD_RUN: u64 = 1 << 0;
    /// [`DMA_CMD`]: direction device to RAM (clear: RAM to device).
    pub(super) const CMD_TO_RAM: u64 = 1 << 1;
    /// Device address of edu's internal DMA buffer.
    pub(super) const DMA_BUF: u64 = 0x40000;
    /// Size in bytes of edu's internal DMA buffer.
    pub(super) const DMA_BUF_SIZE: usize = 4096;
}

/// Size of BAR0; the mapping fails if the BAR is smaller.
const BAR0_SIZE: usize = 1 << 20;

type Bar0<'a> = pci::Bar<'a, BAR0_SIZE>;

/// 32-bit words in one half of the DMA buffer (one edu buffer's worth).
const HALF_WORDS: usize = regs::DMA_BUF_SIZE / core::mem::size_of::<u32>();

// TIMEOUT: an interrupt is delivered within microseconds even under TCG; a second is ample.
const IRQ_TIMEOUT: Delta = Delta::from_secs(1);

/// Consecutive missed interrupts after which the interrupt test stops raising more.
const IRQ_MAX_MISSES: u32 = 3;

// TIMEOUT: edu runs a DMA 100 ms (QEMU virtual clock) after the command is written; allow for
// a slow nested guest.
const DMA_TIMEOUT: Delta = Delta::from_secs(5);

kernel::module_pci_driver! {
    type: EduL2,
    name: "edu_l2",
    authors: ["armsi"],
    description: "Test driver for QEMU's edu device: MSI and DMA round trips (nested VFIO tests)",
    license: "GPL v2",
    params: {
        dma_bits: u32 {
            default: 40,
            description: "DMA mask width in bits (default 40)",
        },
        irqs: u32 {
            default: 100,
            description: "Interrupts to raise one at a time (default 100)",
        },
        hold_ms: u32 {
            default: 0,
            description: "Keep the MSI allocated this long after the tests (for live views)",
        },
    },
}

/// edu's vendor ID (QEMU's historical 0x1234, which `pci::Vendor` cannot name).
const EDU_VENDOR: u16 = 0x1234;
/// edu's device ID.
const EDU_DEVICE: u16 = 0x11e8;

// `pci::DeviceId::from_id()` takes a `pci::Vendor`, and the kernel crate has no `Vendor` for
// 0x1234 and no public constructor; so match edu's class code (0x00ff00, `Class::OTHERS`) and
// check the IDs in `probe()`.
kernel::pci_device_table!(
    PCI_TABLE,
    <EduL2 as pci::Driver>::IdInfo,
    [(
        pci::DeviceId::from_class(
            pci::Class::OTHERS.as_raw(),
            pci::ClassMask::ClassSubclass.as_raw()
        ),
        ()
    )]
);

/// Per-device data kept from probe to unbind.
struct EduL2 {
    /// A DMA buffer the device may still be writing to (the round trip timed out); freed only at
    /// unbind, when the device has long finished.
    _busy_dma: Option<Coherent<[u32]>>,
}

impl pci::Driver for EduL2 {
    type IdInfo = ();
    type Data<'bound> = Self;

    const ID_TABLE: pci::IdTable<Self::IdInfo> = &PCI_TABLE;

    fn probe<'bound>(
        pdev: &'bound pci::Device<Core<'_>>,
        _info: Option<&'bound Self::IdInfo>,
    ) -> impl PinInit<Self, Error> + 'bound {
        if pdev.vendor_id().as_raw() != EDU_VENDOR || pdev.device_id() != EDU_DEVICE {
            return Err(ENODEV);
        }
        match run(pdev) {
            Ok(report) => {
                pr_info!(
                    "RESULT type={} vectors={} irqs={}/{} dma={} dma_addr={:#x}\n",
                    report.irq_type,
                    report.vectors,
                    report.irqs_got,
                    report.irqs_wanted,
                    report.dma.as_str(),
                    report.dma_addr
                );
                Ok(EduL2 {
                    _busy_dma: report.busy_dma,
                })
            }
            Err(e) => {
                pr_info!("RESULT error={} errno={}\n", e.what, e.err.to_errno());
                Err(e.err)
            }
        }
    }
}

/// A failed set-up step: what failed and why.
struct SetupError {
    what: &'static str,
    err: Error,
}

/// Names the set-up step an error comes from.
trait Step<T> {
    fn step(self, what: &'static str) -> Result<T, SetupError>;
}

impl<T, E: Into<Error>> Step<T> for Result<T, E> {
    fn step(self, what: &'static str) -> Result<T, SetupError> {
        self.map_err(|e| SetupError {
            what,
            err: e.into(),
        })
    }
}

/// What the tests found.
struct Report {
    irq_type: &'static str,
    vectors: usize,
    irqs_got: u32,
    irqs_wanted: u32,
    dma: DmaOutcome,
    dma_addr: DmaAddress,
    busy_dma: Option<Coherent<[u32]>>,
}

/// The outcome of the DMA round trip.
#[derive(Clone, Copy)]
enum DmaOutcome {
    /// The data came back unchanged.
    Ok,
    /// The data came back different.
    Mismatch,
    /// The device did not finish a transfer in time.
    Timeout,
    /// Something else failed (allocation, register access).
    Error,
}

impl DmaOutcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Mismatch => "mismatch",
            Self::Timeout => "timeout",
            Self::Error => "error",
        }
    }
}

/// The state the interrupt handler shares with process context.
struct EduIrq<'a> {
    /// edu's registers.
    bar: &'a Bar0<'a>,
    /// Interrupts handled (status was non-zero).
    count: Atomic<u32>,
    /// The status bits the last interrupt acknowledged; published by `count`.
    last: Atomic<u32>,
}

impl irq::Handler for EduIrq<'_> {
    fn handle(&self) -> IrqReturn {
        let status = self.bar.read32(regs::IRQ_STATUS);
        if status == 0 {
            return IrqReturn::None;
        }
        self.bar.write32(status, regs::IRQ_ACK);
        self.last.store(status, Relaxed);
        self.count.fetch_add(1, Release);
        IrqReturn::Handled
    }
}

fn irq_type_name(t: pci::IrqType) -> &'static str {
    match t {
        pci::IrqType::Intx => "intx",
        pci::IrqType::Msi => "msi",
        pci::IrqType::MsiX => "msix",
    }
}

/// Sets the device up, runs both tests and tears the interrupt down again.
fn run(pdev: &pci::Device<Core<'_>>) -> Result<Report, SetupError> {
    pdev.enable_device_mem().step("enable")?;
    pdev.set_master();

    let bar = pdev
        .iomap_region_sized::<BAR0_SIZE>(0, c"edu_l2")
        .step("ioremap")?;
    let id = bar.read32(regs::ID);
    if id != regs::ID_VALUE {
        dev_err!(pdev, "unexpected id {:#x}\n", id);
        return Err(ENODEV).step("id");
    }
    bar.write32(0x1234_5678, regs::LIVENESS);
    if bar.read32(regs::LIVENESS) != !0x1234_5678u32 {
        return Err(EIO).step("liveness");
    }

    let mask = DmaMask::try_new(module_parameters::dma_bits.value()).step("dma_mask")?;
    // SAFETY: Nothing else allocates or maps DMA memory for this device while it is being
    // probed, and this driver allocates only further down, in this same thread.
    unsafe { pdev.dma_set_mask_and_coherent(mask) }.step("dma_mask")?;

    // Forget interrupts a previous user left pending (edu sends an MSI only when raised).
    bar.write32(bar.read32(regs::IRQ_STATUS), regs::IRQ_ACK);

    let msi_only = pci::IrqTypes::default().with(pci::IrqType::Msi);
    let vectors = pdev.alloc_irq_vectors(1, 1, msi_only).step("msi_vectors")?;
    let vector = vectors.index(0).step("msi_vector")?;
    let irq_type = irq_type_name(vector.irq_type());
    let request: irq::IrqRequest<'_> = vector.into();
    let irq_nr = request.irq();
    let handler = EduIrq {
        bar: &bar,
        count: Atomic::new(0),
        last: Atomic::new(0),
    };
    // SAFETY: The registration is a local of this function, dropped (hence freed) before the
    // vectors and the BAR it borrows; it is never leaked.
    let registration = unsafe {
        irq::Registration::new(
            request,
            irq::Flags::TRIGGER_NONE,
            c"edu_l2",
            Ok::<_, Error>(handler),
        )
    };
    let irq = KBox::pin_init(registration, GFP_KERNEL).step("request_irq")?;
    dev_info!(
        pdev,
        "edu id {:#x}, {} vector(s) of type {}, irq {}, dma_bits {}\n",
        id,
        vectors.len(),
        irq_type,
        irq_nr,
        module_parameters::dma_bits.value()
    );

    let irqs_wanted = module_parameters::irqs.value();
    let irqs_got = irq_test(pdev, &irq, irqs_wanted);
    let (dma, dma_addr, busy_dma) = dma_test(pdev, &bar);
    let hold_ms = module_parameters::hold_ms.value();
    if hold_ms > 0 {
        kernel::time::delay::fsleep(Delta::from_millis(i64::from(hold_ms)));
    }

    let vectors_len = vectors.len();
    // Free the interrupt before its vector, and both before the BAR the handler reads.
    drop(irq);
    drop(vectors);
    drop(bar);

    Ok(Report {
        irq_type,
        vectors: vectors_len,
        irqs_got,
        irqs_wanted,
        dma,
        dma_addr,
        busy_dma,
    })
}

/// Raises `wanted` interrupts one at a time; returns how many the handler counted.
fn irq_test(
    pdev: &pci::Device<Core<'_>>,
    irq: &irq::Registration<'_, EduIrq<'_>>,
    wanted: u32,
) -> u32 {
    let h = irq.handler();
    let mut raised = 0u32;
    let mut misses = 0u32;
    let mut wrong = 0u32;

    while raised < wanted && misses < IRQ_MAX_MISSES {
        // Distinct non-zero values below edu's DMA-done bit (0x100).
        let value = raised % 0xff + 1;
        let before = h.count.load(Acquire);
        h.bar.write32(value, regs::IRQ_RAISE);
        raised += 1;

        let arrived = read_poll_timeout(
            || Ok(h.count.load(Acquire)),
            |&count| count != before,
            Delta::from_micros(50),
            IRQ_TIMEOUT,
        );
        if arrived.is_ok() {
            misses = 0;
            if (h.last.load(Relaxed) & value) != value {
                wrong += 1;
            }
        } else {
            misses += 1;
        }
    }

    // Let a late interrupt land before the count is taken.
    irq.synchronize();
    let got = h.count.load(Acquire);
    if got != wanted || wrong != 0 {
        dev_warn!(
            pdev,
            "interrupts: raised {}/{}, handled {}, {} with unexpected status\n",
            raised,
            wanted,
            got,
            wrong
        );
    }
    got
}

/// Pattern word `i` of the RAM-to-device half.
fn pattern(i: usize) -> u32 {
    // CAST: `i` < `HALF_WORDS`, far below `u32::MAX`.
    0xed00_0000 ^ (i as u32).wrapping_mul(0x9e37_79b9)
}

/// Waits until edu has no DMA running.
fn dma_wait_idle(bar: &Bar0<'_>) -> Result {
    read_poll_timeout(
        || bar.try_read64(regs::DMA_CMD),
        |cmd: &u64| (cmd & regs::CMD_RUN) == 0,
        Delta::from_millis(1),
        DMA_TIMEOUT,
    )
    .map(|_| ())
}

/// Runs one edu DMA transfer and waits for it to finish.
///
/// The 64-bit registers are accessed with the runtime-checked accessors: the compile-time
/// checked ones reject 8-byte accesses to a `Region`, which only promises 4-byte alignment.
fn dma_transfer(bar: &Bar0<'_>, src: u64, dst: u64, cmd: u64) -> Result {
    bar.try_write64(src, regs::DMA_SRC)?;
    bar.try_write64(dst, regs::DMA_DST)?;
    // CAST: 4096 fits in `u64`.
    bar.try_write64(regs::DMA_BUF_SIZE as u64, regs::DMA_COUNT)?;
    bar.try_write64(cmd | regs::CMD_RUN, regs::DMA_CMD)?;
    dma_wait_idle(bar)
}

/// Copies a pattern to edu's buffer and back; returns the outcome, the buffer's bus address and,
/// if the device may still be using it, the buffer.
fn dma_test(
    pdev: &pci::Device<Core<'_>>,
    bar: &Bar0<'_>,
) -> (DmaOutcome, DmaAddress, Option<Coherent<[u32]>>) {
    let mut buf =
        match CoherentBox::<[u32]>::zeroed_slice(pdev.as_ref(), 2 * HALF_WORDS, GFP_KERNEL) {
            Ok(buf) => buf,
            Err(e) => {
                dev_err!(pdev, "DMA buffer allocation failed: {:?}\n", e);
                return (DmaOutcome::Error, 0, None);
            }
        };
    for (i, word) in buf.iter_mut().take(HALF_WORDS).enumerate() {
        *word = pattern(i);
    }
    let buf: Coherent<[u32]> = buf.into();
    let addr = buf.dma_address();

    let outcome = |e: Error| {
        if e == ETIMEDOUT {
            DmaOutcome::Timeout
        } else {
            DmaOutcome::Error
        }
    };

    // Never hand the buffer to a device that is still busy with somebody else's transfer.
    if let Err(e) = dma_wait_idle(bar) {
        dev_err!(pdev, "edu DMA busy before the test: {:?}\n", e);
        return (outcome(e), addr, None);
    }
    let back = match back_half_addr(&buf) {
        Ok(back) => back,
        Err(e) => return (outcome(e), addr, None),
    };
    for (src, dst, cmd) in [
        (addr, regs::DMA_BUF, 0),
        (regs::DMA_BUF, back, regs::CMD_TO_RAM),
    ] {
        if let Err(e) = dma_transfer(bar, src, dst, cmd) {
            dev_err!(pdev, "edu DMA {:#x} -> {:#x} failed: {:?}\n", src, dst, e);
            return (outcome(e), addr, Some(buf));
        }
    }

    match count_mismatches(&buf) {
        Ok(0) => (DmaOutcome::Ok, addr, None),
        Ok(bad) => {
            dev_warn!(
                pdev,
                "DMA round trip: {} of {} words differ\n",
                bad,
                HALF_WORDS
            );
            (DmaOutcome::Mismatch, addr, None)
        }
        Err(e) => (outcome(e), addr, None),
    }
}

/// Returns the bus address of the second (device-to-RAM) half of `buf`.
fn back_half_addr(buf: &Coherent<[u32]>) -> Result<DmaAddress> {
    Ok(io_project!(buf, [try: HALF_WORDS..]).dma_address())
}

/// Counts the words of the second half of `buf` that differ from the first half's pattern.
fn count_mismatches(buf: &Coherent<[u32]>) -> Result<usize> {
    let mut bad = 0;
    for i in 0..HALF_WORDS {
        if io_read!(buf, [try: HALF_WORDS + i]) != pattern(i) {
            bad += 1;
        }
    }
    Ok(bad)
}
