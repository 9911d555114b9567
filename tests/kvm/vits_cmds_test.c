// SPDX-License-Identifier: GPL-2.0
/*
 * vits_cmds_test - ITS command semantics, against KVM's built-in ITS or
 * kvm_vits.
 *
 *   vits_cmds_test builtin|vits
 *
 * Every case runs in a fresh VM with two vCPUs (in a child process, so a
 * failed assertion fails that case only). The guest programs the ITS
 * through its command queue; the host injects MSIs with KVM_SIGNAL_MSI and
 * then runs each vCPU for a short window with interrupts unmasked: the
 * guest's IRQ handler logs each INTID it takes, per vCPU, and the host
 * compares the log with the exact expected INTIDs.
 *
 * The vCPUs are run one at a time from the host's main thread (except in
 * the fuzz case), so "not delivered" is deterministic: an LPI pending for a
 * vCPU is in its list registers as soon as it enters the guest.
 *
 * "vits" loads /armsi/modules/kvm_vits.ko when it is not loaded and checks
 * through /sys/kernel/debug/kvm_vits/created that each VM's ITS came from
 * it; "builtin" unloads kvm_vits first.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/align.h>
#include <linux/kvm_vits.h>
#include <linux/sizes.h>

#include "kvm_util.h"
#include "arch_timer.h"
#include "gic.h"
#include "gic_v3.h"
#include "gic_v3_its.h"
#include "processor.h"
#include "ucall.h"
#include "vgic.h"
#include "kselftest.h"
#include "run_forked.h"
#include "../bench/stats.h"

#define NR_VCPUS		2
#define TEST_MEMSLOT		1
#define LPI_BASE		8192
#define LOG_MAX			256
#define ESZ			8

#define PROP_EN			(0xa0 | LPI_PROP_GROUP1 | LPI_PROP_ENABLED)
#define PROP_DIS		(0xa0 | LPI_PROP_GROUP1)

#define L1E_VALID		BIT_ULL(63)
#define L1E_ADDR_MASK		GENMASK_ULL(51, 16)
#define L2_ENTRIES		(SZ_64K / ESZ)

#define VITS_KO			"/armsi/modules/kvm_vits.ko"
#define VITS_DBG		"/sys/kernel/debug/kvm_vits"

/* Memory layout of the test memslot, in 64K units, fixed per VM. */
enum {
	R_DEV,		/* device table (flat) or its L1 table (indirect) */
	R_COLL,		/* collection table */
	R_CMDQ,		/* command queue (up to 64K) */
	R_L2,		/* 2 x L2 device tables */
	R_ITT = R_L2 + 2,	/* ITTs: 16 x 4K, then a 128K one at +128K */
	R_PROP = R_ITT + 4,	/* LPI property table */
	R_PEND,		/* 2 x pending tables */
	R_SCRATCH = R_PEND + 2,	/* 4 x 64K playground for the fuzzer */
	R_END = R_SCRATCH + 4,
};
#define SLOT_SIZE		(R_END * SZ_64K)
#define BIG_ITT_OFF		SZ_128K

/* ---------------------------------------------------------------------- */
/* ITS command encoders (same layout as lib/arm64/gic_v3_its.c)           */
/* ---------------------------------------------------------------------- */

struct its_cmd {
	u64 raw[4];
};

static void enc(u64 *w, u64 val, int h, int l)
{
	u64 mask = GENMASK_ULL(h, l);

	*w = (*w & ~mask) | ((val << l) & mask);
}

static struct its_cmd cmd_op(u8 op)
{
	struct its_cmd c = {};

	enc(&c.raw[0], op, 7, 0);
	return c;
}

/* ITT holds 2^bits events: the MAPD Size field is bits - 1. */
static struct its_cmd cmd_mapd(u32 devid, u64 itt, u32 bits, bool valid)
{
	struct its_cmd c = cmd_op(GITS_CMD_MAPD);

	enc(&c.raw[0], devid, 63, 32);
	enc(&c.raw[1], bits - 1, 4, 0);
	enc(&c.raw[2], itt >> 8, 51, 8);
	enc(&c.raw[2], valid, 63, 63);
	return c;
}

/* GITS_TYPER.PTA == 0: the target is the vCPU (processor) number. */
static struct its_cmd cmd_mapc(u32 icid, u32 vcpu, bool valid)
{
	struct its_cmd c = cmd_op(GITS_CMD_MAPC);

	enc(&c.raw[2], icid, 15, 0);
	enc(&c.raw[2], vcpu, 51, 16);
	enc(&c.raw[2], valid, 63, 63);
	return c;
}

static struct its_cmd cmd_dev_ev(u8 op, u32 devid, u32 ev)
{
	struct its_cmd c = cmd_op(op);

	enc(&c.raw[0], devid, 63, 32);
	enc(&c.raw[1], ev, 31, 0);
	return c;
}

static struct its_cmd cmd_mapti(u32 devid, u32 ev, u32 icid, u32 intid)
{
	struct its_cmd c = cmd_dev_ev(GITS_CMD_MAPTI, devid, ev);

	enc(&c.raw[1], intid, 63, 32);
	enc(&c.raw[2], icid, 15, 0);
	return c;
}

/* MAPI: the INTID is the EventID. */
static struct its_cmd cmd_mapi(u32 devid, u32 ev, u32 icid)
{
	struct its_cmd c = cmd_dev_ev(GITS_CMD_MAPI, devid, ev);

	enc(&c.raw[2], icid, 15, 0);
	return c;
}

static struct its_cmd cmd_movi(u32 devid, u32 ev, u32 icid)
{
	struct its_cmd c = cmd_dev_ev(GITS_CMD_MOVI, devid, ev);

	enc(&c.raw[2], icid, 15, 0);
	return c;
}

static struct its_cmd cmd_discard(u32 devid, u32 ev)
{
	return cmd_dev_ev(GITS_CMD_DISCARD, devid, ev);
}

static struct its_cmd cmd_clear(u32 devid, u32 ev)
{
	return cmd_dev_ev(GITS_CMD_CLEAR, devid, ev);
}

static struct its_cmd cmd_int(u32 devid, u32 ev)
{
	return cmd_dev_ev(GITS_CMD_INT, devid, ev);
}

static struct its_cmd cmd_inv(u32 devid, u32 ev)
{
	return cmd_dev_ev(GITS_CMD_INV, devid, ev);
}

static struct its_cmd cmd_movall(u32 from, u32 to)
{
	struct its_cmd c = cmd_op(GITS_CMD_MOVALL);

	enc(&c.raw[2], from, 51, 16);
	enc(&c.raw[3], to, 51, 16);
	return c;
}

static struct its_cmd cmd_invall(u32 icid)
{
	struct its_cmd c = cmd_op(GITS_CMD_INVALL);

	enc(&c.raw[2], icid, 15, 0);
	return c;
}

static struct its_cmd cmd_sync(u32 vcpu)
{
	struct its_cmd c = cmd_op(GITS_CMD_SYNC);

	enc(&c.raw[2], vcpu, 51, 16);
	return c;
}

/* ---------------------------------------------------------------------- */
/* Guest side                                                             */
/* ---------------------------------------------------------------------- */

enum {
	OP_NONE,
	OP_INIT_ITS,	/* (re)install valid tables and enable the ITS */
	OP_CMDS,	/* arg0: count, arg1: one CWRITER write for all */
	OP_POLL,	/* unmask interrupts for a short window */
	OP_PROP,	/* arg0: intid, arg1: property byte */
	OP_FUZZ,	/* arg0: seed, arg1: batches */
	OP_BUSY,	/* OP_CMDS' batch (arg0 commands), again and again until stop */
	OP_DONE,
};

#define MAX_CMDS		128

struct shared {
	/* Layout, set by the host before the first run. */
	u64 base;
	u64 cmdq_size;
	u64 indirect;
	/* Per vCPU request. */
	u64 op[NR_VCPUS];
	u64 arg[NR_VCPUS][4];
	/* Per vCPU LPI log. */
	u32 nr_lpis[NR_VCPUS];
	u32 lpis[NR_VCPUS][LOG_MAX];
	/* Results of OP_CMDS / OP_INIT_ITS (vCPU 0). */
	u64 mismatches;		/* CREADR != CWRITER after a CWRITER write */
	u64 creadr, cwriter, ctlr, expect_off;
	u64 fuzz_cmds, fuzz_regs;
	/* OP_BUSY: set by the host to end it; batches the guest ran. */
	u64 stop, busy_batches;
	/* Commands for OP_CMDS, encoded by the host. */
	struct its_cmd cmds[MAX_CMDS];
};

static struct shared sh;

static inline u64 rgn(int r)
{
	return READ_ONCE(sh.base) + (u64)r * SZ_64K;
}

static u64 its_rd64(u32 off) { return readq_relaxed(GITS_BASE_GVA + off); }
/* noinline: writeq_relaxed() of a constant 0 assembles to "str 0". */
static __attribute__((__noinline__)) void its_wr64(u32 off, u64 v) { writeq_relaxed(v, GITS_BASE_GVA + off); }
static u32 its_rd32(u32 off) { return readl_relaxed(GITS_BASE_GVA + off); }
static void its_wr32(u32 off, u32 v) { writel_relaxed(v, GITS_BASE_GVA + off); }

static void guest_irq_handler(struct ex_regs *regs)
{
	u32 cpu = guest_get_vcpuid();
	u32 intid = gic_get_and_ack_irq();
	u32 n;

	if (intid == IAR_SPURIOUS)
		return;
	n = READ_ONCE(sh.nr_lpis[cpu]);
	if (n < LOG_MAX)
		WRITE_ONCE(sh.lpis[cpu][n], intid);
	WRITE_ONCE(sh.nr_lpis[cpu], n + 1);
	gic_set_eoi(intid);
}

static u64 baser_val(u64 base, u32 pages, bool indirect)
{
	return (pages - 1) | GITS_BASER_PAGE_SIZE_64K | GITS_BASER_InnerShareable |
	       base | GITS_BASER_RaWaWb | GITS_BASER_VALID |
	       (indirect ? GITS_BASER_INDIRECT : 0);
}

static u64 cbaser_val(u64 base, u64 size)
{
	return ((size / SZ_4K) - 1) | GITS_CBASER_InnerShareable | base |
	       GITS_CBASER_RaWaWb | GITS_CBASER_VALID;
}

static int find_baser(unsigned int type)
{
	int i;

	for (i = 0; i < GITS_BASER_NR_REGS; i++)
		if (GITS_BASER_TYPE(its_rd64(GITS_BASER + i * 8)) == type)
			return GITS_BASER + i * 8;
	GUEST_FAIL("no GITS_BASER of type %u", type);
	return -1;
}

/* Disable, wait for quiescence, drop the tables, install valid ones, enable. */
static void guest_init_its(void)
{
	int dev = find_baser(GITS_BASER_TYPE_DEVICE);
	int coll = find_baser(GITS_BASER_TYPE_COLLECTION);
	bool indirect = READ_ONCE(sh.indirect);
	int i;

	/*
	 * A disabled ITS does not process its queue, so after a fuzz that left
	 * CWRITER ahead it may never report Quiescent (KVM's built-in ITS
	 * derives Quiescent from CREADR == CWRITER): bounded wait only. The
	 * CBASER write below resets the queue anyway.
	 */
	its_wr32(GITS_CTLR, 0);
	for (i = 0; i < 1000 && !(its_rd32(GITS_CTLR) & GITS_CTLR_QUIESCENT); i++)
		cpu_relax();
	WRITE_ONCE(sh.ctlr, its_rd32(GITS_CTLR));
	its_wr64(dev, 0);
	its_wr64(coll, 0);
	if (indirect) {
		u64 *l1 = (u64 *)rgn(R_DEV);

		for (i = 0; i < SZ_64K / 8; i++)
			l1[i] = 0;
		l1[0] = L1E_VALID | (rgn(R_L2) & L1E_ADDR_MASK);
		l1[1] = L1E_VALID | (rgn(R_L2 + 1) & L1E_ADDR_MASK);
		dsb(ishst);
	}
	its_wr64(dev, baser_val(rgn(R_DEV), 1, indirect));
	its_wr64(coll, baser_val(rgn(R_COLL), 1, false));
	its_wr64(GITS_CBASER, cbaser_val(rgn(R_CMDQ), READ_ONCE(sh.cmdq_size)));
	its_wr64(GITS_CWRITER, its_rd64(GITS_CREADR));
	its_wr32(GITS_CTLR, its_rd32(GITS_CTLR) | GITS_CTLR_ENABLE);
	__GUEST_ASSERT(its_rd32(GITS_CTLR) & GITS_CTLR_ENABLE, "ITS not enabled: CTLR 0x%x",
		       its_rd32(GITS_CTLR));
	WRITE_ONCE(sh.creadr, its_rd64(GITS_CREADR));
	WRITE_ONCE(sh.cwriter, its_rd64(GITS_CWRITER));
}

static void queue_put(u64 off, const struct its_cmd *c)
{
	struct its_cmd *dst = (void *)(rgn(R_CMDQ) + off);

	WRITE_ONCE(dst->raw[0], c->raw[0]);
	WRITE_ONCE(dst->raw[1], c->raw[1]);
	WRITE_ONCE(dst->raw[2], c->raw[2]);
	WRITE_ONCE(dst->raw[3], c->raw[3]);
}

static void note_progress(u64 expect)
{
	u64 creadr = its_rd64(GITS_CREADR);
	u64 cwriter = its_rd64(GITS_CWRITER);
	u32 ctlr = its_rd32(GITS_CTLR);

	if (creadr != cwriter || cwriter != expect)
		WRITE_ONCE(sh.mismatches, READ_ONCE(sh.mismatches) + 1);
	WRITE_ONCE(sh.creadr, creadr);
	WRITE_ONCE(sh.cwriter, cwriter);
	WRITE_ONCE(sh.ctlr, ctlr);
	WRITE_ONCE(sh.expect_off, expect);
}

static void guest_cmds(u32 n, bool batch)
{
	u64 size = READ_ONCE(sh.cmdq_size);
	u64 pos = its_rd64(GITS_CWRITER);
	u32 i;

	WRITE_ONCE(sh.mismatches, 0);
	for (i = 0; i < n; i++) {
		queue_put(pos, &sh.cmds[i]);
		pos = (pos + sizeof(struct its_cmd)) % size;
		if (!batch || i == n - 1) {
			dsb(ishst);
			its_wr64(GITS_CWRITER, pos);
			note_progress(pos);
		}
	}
}

static void guest_poll(void)
{
	u64 start = timer_get_cntct(VIRTUAL);
	u64 cycles = msec_to_cycles(2);
	int i;

	local_irq_enable();
	isb();
	for (i = 0; i < 2000 || timer_get_cntct(VIRTUAL) - start < cycles; i++)
		cpu_relax();
	local_irq_disable();
	isb();
}

static u64 rnd_state;

static u64 rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

/* A table address: in the scratch area, far outside memory, or garbage. */
static u64 fuzz_addr(void)
{
	switch (rnd() % 3) {
	case 0:
		return rgn(R_SCRATCH) + (rnd() % 4) * SZ_64K;
	case 1:
		return (BIT_ULL(45) + (rnd() % 1024) * SZ_64K) & GENMASK_ULL(51, 16);
	default:
		return (BIT_ULL(46) | rnd()) & GENMASK_ULL(47, 12);
	}
}

static struct its_cmd fuzz_cmd(void)
{
	static const u8 ops[] = { GITS_CMD_MAPD, GITS_CMD_MAPC, GITS_CMD_MAPTI,
				  GITS_CMD_MAPI, GITS_CMD_MOVI, GITS_CMD_DISCARD,
				  GITS_CMD_INV, GITS_CMD_MOVALL, GITS_CMD_INVALL,
				  GITS_CMD_INT, GITS_CMD_CLEAR, GITS_CMD_SYNC };
	struct its_cmd c;
	u32 devid, ev, icid, intid;

	switch (rnd() % 4) {
	case 0:		/* random bytes */
		c.raw[0] = rnd(); c.raw[1] = rnd(); c.raw[2] = rnd(); c.raw[3] = rnd();
		return c;
	case 1:		/* valid-looking, out-of-range IDs and sizes */
		devid = rnd(); ev = rnd(); icid = rnd(); intid = rnd();
		break;
	default:	/* small IDs: real mappings the host MSIs can hit */
		devid = rnd() % 8; ev = rnd() % 16; icid = rnd() % 4;
		intid = LPI_BASE + rnd() % 512;
		break;
	}
	switch (ops[rnd() % ARRAY_SIZE(ops)]) {
	case GITS_CMD_MAPD:
		if (rnd() % 2)	/* huge ITT sizes, ITTs outside memory */
			return cmd_mapd(devid, fuzz_addr(), 1 + rnd() % 32, rnd() % 4);
		return cmd_mapd(devid, rgn(R_SCRATCH) + (devid % 16) * SZ_4K, 4, rnd() % 8);
	case GITS_CMD_MAPC:
		return cmd_mapc(icid, rnd() % 3 ? rnd() % NR_VCPUS : rnd(), rnd() % 8);
	case GITS_CMD_MAPTI:
		return cmd_mapti(devid, ev, icid, intid);
	case GITS_CMD_MAPI:
		return cmd_mapi(devid, rnd() % 2 ? ev : intid, icid);
	case GITS_CMD_MOVI:
		return cmd_movi(devid, ev, icid);
	case GITS_CMD_DISCARD:
		return cmd_discard(devid, ev);
	case GITS_CMD_INV:
		return cmd_inv(devid, ev);
	case GITS_CMD_MOVALL:
		return cmd_movall(rnd() % 3, rnd() % 3);
	case GITS_CMD_INVALL:
		return cmd_invall(icid);
	case GITS_CMD_INT:
		return cmd_int(devid, ev);
	case GITS_CMD_CLEAR:
		return cmd_clear(devid, ev);
	default:
		return cmd_sync(rnd() % 3);
	}
}

static void fuzz_reg(void)
{
	u64 v;

	switch (rnd() % 6) {
	case 0:
	case 1: {
		int off = GITS_BASER + (rnd() % 2) * 8;

		if (rnd() % 2)
			v = baser_val(fuzz_addr() & GENMASK_ULL(47, 16), 1 + rnd() % 4,
				      rnd() % 2);
		else
			v = (rnd() & ~GENMASK_ULL(51, 12)) | fuzz_addr();
		its_wr64(off, v);
		break;
	}
	case 2:
		if (rnd() % 2)
			v = cbaser_val(rnd() % 2 ? rgn(R_CMDQ) : fuzz_addr(),
				       SZ_4K * (1 + rnd() % 16));
		else
			v = (rnd() & ~GENMASK_ULL(51, 12)) | fuzz_addr();
		its_wr64(GITS_CBASER, v);
		break;
	case 3:
		its_wr32(GITS_CTLR, rnd());
		break;
	case 4:
		its_wr32(GITS_CTLR, GITS_CTLR_ENABLE);
		break;
	default:
		its_wr64(GITS_CWRITER, rnd() % 2 ? rnd() : (rnd() % 2048) * 32);
		break;
	}
	WRITE_ONCE(sh.fuzz_regs, READ_ONCE(sh.fuzz_regs) + 1);
}

static void guest_fuzz(u64 seed, u32 batches)
{
	u64 size = SZ_64K;	/* what we write, whatever CBASER says now */
	u32 b, i, n;

	rnd_state = seed | 1;
	for (b = 0; b < batches; b++) {
		u64 pos = its_rd64(GITS_CWRITER) % size & ~31ULL;
		struct its_cmd c;

		n = 1 + rnd() % 32;
		for (i = 0; i < n; i++) {
			c = fuzz_cmd();
			queue_put(pos, &c);
			pos = (pos + 32) % size;
		}
		dsb(ishst);
		its_wr64(GITS_CWRITER, pos);
		WRITE_ONCE(sh.fuzz_cmds, READ_ONCE(sh.fuzz_cmds) + n);
		if (rnd() % 3 == 0)
			fuzz_reg();
		(void)its_rd64(GITS_CREADR);
		(void)its_rd32(GITS_CTLR);
	}
}

static void guest_code(void)
{
	u32 cpu = guest_get_vcpuid();

	gic_init(GIC_V3, NR_VCPUS);
	gic_rdist_enable_lpis(rgn(R_PROP), SZ_64K, rgn(R_PEND) + cpu * SZ_64K);

	for (;;) {
		GUEST_SYNC(cpu);

		switch (READ_ONCE(sh.op[cpu])) {
		case OP_INIT_ITS:
			guest_init_its();
			break;
		case OP_CMDS:
			guest_cmds(READ_ONCE(sh.arg[cpu][0]), READ_ONCE(sh.arg[cpu][1]));
			break;
		case OP_POLL:
			guest_poll();
			break;
		case OP_PROP: {
			u8 *prop = (u8 *)rgn(R_PROP);

			WRITE_ONCE(prop[READ_ONCE(sh.arg[cpu][0]) - LPI_BASE],
				   (u8)READ_ONCE(sh.arg[cpu][1]));
			dsb(ishst);
			break;
		}
		case OP_FUZZ:
			guest_fuzz(READ_ONCE(sh.arg[cpu][0]), READ_ONCE(sh.arg[cpu][1]));
			break;
		case OP_BUSY:
			while (!READ_ONCE(sh.stop)) {
				guest_cmds(READ_ONCE(sh.arg[cpu][0]), true);
				WRITE_ONCE(sh.busy_batches, READ_ONCE(sh.busy_batches) + 1);
			}
			break;
		case OP_DONE:
			GUEST_DONE();
			break;
		default:
			GUEST_FAIL("bad op %lu", READ_ONCE(sh.op[cpu]));
		}
	}
}

/* ---------------------------------------------------------------------- */
/* Host side                                                              */
/* ---------------------------------------------------------------------- */

static bool want_vits;		/* argv[1] == "vits" */
static bool cur_vits;		/* the backend new VMs must get */

/* Shared with the case processes. */
struct snapshot {
	bool valid;
	int backend;		/* 1: vits */
	u64 base;		/* GPA of the test memslot */
	u64 regs[6 + GITS_BASER_NR_REGS];
	u8 mem[SLOT_SIZE];
};

static struct xshared {
	char reason[512];
	struct snapshot snap[2][2];	/* [indirect][vits] */
} *xs;

static const u32 its_reg_offs[] = {
	GITS_CTLR, GITS_IIDR, GITS_TYPER, GITS_CBASER, GITS_CWRITER, GITS_CREADR,
	GITS_BASER + 0x00, GITS_BASER + 0x08, GITS_BASER + 0x10, GITS_BASER + 0x18,
	GITS_BASER + 0x20, GITS_BASER + 0x28, GITS_BASER + 0x30, GITS_BASER + 0x38,
};
static const char *const its_reg_names[] = {
	"GITS_CTLR", "GITS_IIDR", "GITS_TYPER", "GITS_CBASER", "GITS_CWRITER",
	"GITS_CREADR", "GITS_BASER0", "GITS_BASER1", "GITS_BASER2", "GITS_BASER3",
	"GITS_BASER4", "GITS_BASER5", "GITS_BASER6", "GITS_BASER7",
};

static void skip_case(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(xs->reason, sizeof(xs->reason), fmt, ap);
	va_end(ap);
	exit(KSFT_SKIP);
}

/* Module handling ------------------------------------------------------- */

static bool vits_loaded(void)
{
	return access("/sys/module/kvm_vits", F_OK) == 0;
}

static long read_dbg(const char *name)
{
	char path[128], buf[32] = {};
	int fd;

	snprintf(path, sizeof(path), VITS_DBG "/%s", name);
	fd = open(path, O_RDONLY);
	TEST_ASSERT(fd >= 0, "open %s: %s", path, strerror(errno));
	TEST_ASSERT(read(fd, buf, sizeof(buf) - 1) > 0, "read %s", path);
	close(fd);
	return strtol(buf, NULL, 0);
}

static void load_vits(void)
{
	int fd;

	if (vits_loaded())
		return;
	fd = open(VITS_KO, O_RDONLY | O_CLOEXEC);
	TEST_ASSERT(fd >= 0, "open %s: %s", VITS_KO, strerror(errno));
	TEST_ASSERT(!syscall(SYS_finit_module, fd, "", 0) || errno == EEXIST,
		    "finit_module(%s): %s", VITS_KO, strerror(errno));
	close(fd);
}

static int try_unload_vits(void)
{
	return syscall(SYS_delete_module, "kvm_vits", O_NONBLOCK) ? errno : 0;
}

static void unload_vits(void)
{
	int err, i;

	for (i = 0; vits_loaded(); i++) {
		err = try_unload_vits();
		if (!err || err == ENOENT)
			return;
		TEST_ASSERT(i < 50, "delete_module(kvm_vits): %s", strerror(err));
		usleep(100000);
	}
}

static void use_backend(bool vits)
{
	cur_vits = vits;
	if (vits)
		load_vits();
	else
		unload_vits();
}

/* VM handling ------------------------------------------------------------ */

struct ctx {
	struct kvm_vm *vm;
	struct kvm_vcpu *vcpus[NR_VCPUS];
	int its_fd;
	struct shared *sh;
	u64 base;
	bool vits;
};

static void vcpu_op(struct ctx *c, int cpu, u64 op, u64 a0, u64 a1)
{
	struct ucall uc;

	c->sh->op[cpu] = op;
	c->sh->arg[cpu][0] = a0;
	c->sh->arg[cpu][1] = a1;
	vcpu_run(c->vcpus[cpu]);
	switch (get_ucall(c->vcpus[cpu], &uc)) {
	case UCALL_SYNC:
		TEST_ASSERT(op != OP_DONE, "vCPU %d: OP_DONE returned", cpu);
		break;
	case UCALL_DONE:
		TEST_ASSERT(op == OP_DONE, "vCPU %d: unexpected GUEST_DONE", cpu);
		break;
	case UCALL_ABORT:
		REPORT_GUEST_ASSERT(uc);
		break;
	default:
		TEST_FAIL("vCPU %d: unexpected exit %s (ucall %lu)", cpu,
			  exit_reason_str(c->vcpus[cpu]->run->exit_reason), uc.cmd);
	}
}

/*
 * A VM with two vCPUs, a GICv3 and an ITS at the usual addresses, the test
 * memslot laid out as R_* says. Both vCPUs have run their GIC init (LPIs
 * enabled in both redistributors); the ITS is not programmed yet.
 */
static void vm_setup(struct ctx *c, bool indirect, u64 cmdq_size)
{
	long created = 0;
	u8 *prop;
	int i;

	memset(c, 0, sizeof(*c));
	c->vits = vits_loaded();
	TEST_ASSERT(c->vits == cur_vits, "kvm_vits %s, expected the %s backend",
		    c->vits ? "loaded" : "not loaded", cur_vits ? "kvm_vits" : "built-in");
	if (c->vits)
		created = read_dbg("created");

	c->vm = vm_create_with_vcpus(NR_VCPUS, guest_code, c->vcpus);
	vm_init_descriptor_tables(c->vm);
	for (i = 0; i < NR_VCPUS; i++)
		vcpu_init_descriptor_tables(c->vcpus[i]);
	vm_install_exception_handler(c->vm, VECTOR_IRQ_CURRENT, guest_irq_handler);

	c->base = ((vm_compute_max_gfn(c->vm) + 1) * c->vm->page_size) - SLOT_SIZE;
	TEST_ASSERT(IS_ALIGNED(c->base, SZ_64K), "slot base 0x%lx", c->base);
	vm_userspace_mem_region_add(c->vm, VM_MEM_SRC_ANONYMOUS, c->base, TEST_MEMSLOT,
				    SLOT_SIZE / c->vm->page_size, 0);
	/* The guest touches the L1 table, queue, property table, scratch. */
	virt_map(c->vm, c->base, c->base, SLOT_SIZE / c->vm->page_size);

	c->its_fd = vgic_its_setup(c->vm);
	if (c->vits)
		TEST_ASSERT(read_dbg("created") == created + 1,
			    "the VM's ITS did not come from kvm_vits (created %ld -> %ld)",
			    created, read_dbg("created"));

	prop = addr_gpa2hva(c->vm, c->base + R_PROP * SZ_64K);
	memset(prop, PROP_EN, SZ_64K);

	c->sh = addr_gva2hva(c->vm, (gva_t)&sh);
	c->sh->base = c->base;
	c->sh->cmdq_size = cmdq_size;
	c->sh->indirect = indirect;

	for (i = 0; i < NR_VCPUS; i++) {
		struct ucall uc;

		vcpu_run(c->vcpus[i]);
		if (get_ucall(c->vcpus[i], &uc) == UCALL_ABORT)
			REPORT_GUEST_ASSERT(uc);
		TEST_ASSERT(uc.cmd == UCALL_SYNC, "vCPU %d: init ended with ucall %lu",
			    i, uc.cmd);
	}
}

static void vm_teardown(struct ctx *c)
{
	close(c->its_fd);
	kvm_vm_free(c->vm);
	c->vm = NULL;
}

static void its_setup(struct ctx *c)
{
	vcpu_op(c, 0, OP_INIT_ITS, 0, 0);
}

static u64 itt(struct ctx *c, int slot)
{
	return c->base + R_ITT * SZ_64K + slot * SZ_4K;
}

static u64 big_itt(struct ctx *c)
{
	return c->base + R_ITT * SZ_64K + BIG_ITT_OFF;
}

/* The guest issues the commands, one CWRITER write each, then checks. */
static void __guest_cmds(struct ctx *c, bool batch, int n, const struct its_cmd *cmds)
{
	TEST_ASSERT(n <= MAX_CMDS, "too many commands");
	memcpy(c->sh->cmds, cmds, n * sizeof(*cmds));
	vcpu_op(c, 0, OP_CMDS, n, batch);
	TEST_ASSERT(!c->sh->mismatches,
		    "ITS lagging: %lu CWRITER writes left CREADR 0x%lx CWRITER 0x%lx (expected 0x%lx)",
		    c->sh->mismatches, c->sh->creadr, c->sh->cwriter, c->sh->expect_off);
}

#define guest_cmds(c, ...) do {						\
	const struct its_cmd __cmds[] = { __VA_ARGS__ };			\
	__guest_cmds(c, false, ARRAY_SIZE(__cmds), __cmds);			\
} while (0)

static void set_prop(struct ctx *c, u32 intid, u8 val)
{
	vcpu_op(c, 0, OP_PROP, intid, val);
}

static int signal_msi(struct ctx *c, u32 devid, u32 ev)
{
	u64 db = GITS_BASE_GPA + GITS_TRANSLATER;
	struct kvm_msi msi = {
		.address_lo = (u32)db,
		.address_hi = db >> 32,
		.data = ev,
		.devid = devid,
		.flags = KVM_MSI_VALID_DEVID,
	};

	return __vm_ioctl(c->vm, KVM_SIGNAL_MSI, &msi);
}

static void msi_expect(struct ctx *c, u32 devid, u32 ev, int want, const char *what)
{
	int ret = signal_msi(c, devid, ev);

	TEST_ASSERT(ret == want,
		    "%s: KVM_SIGNAL_MSI(devid %u, eventid %u) returned %d (errno %d), expected %d",
		    what, devid, ev, ret, ret < 0 ? errno : 0, want);
}

static int cmp_u32(const void *a, const void *b)
{
	return *(const u32 *)a < *(const u32 *)b ? -1 : *(const u32 *)a > *(const u32 *)b;
}

static void fmt_list(char *buf, size_t len, const u32 *l, int n)
{
	int i, o = 0;

	o += snprintf(buf + o, len - o, "{");
	for (i = 0; i < n && o < (int)len - 12; i++)
		o += snprintf(buf + o, len - o, "%s%u", i ? " " : "", l[i]);
	snprintf(buf + o, len - o, "}");
}

/*
 * Runs vCPU 0 and then vCPU 1 with interrupts unmasked; each must take
 * exactly the LPIs listed (any order). exp0/exp1 end at a 0.
 */
static void expect_lpis(struct ctx *c, const char *what, const u32 *exp0, const u32 *exp1)
{
	const u32 *exp[NR_VCPUS] = { exp0, exp1 };
	int cpu;

	for (cpu = 0; cpu < NR_VCPUS; cpu++) {
		u32 got[LOG_MAX], want[LOG_MAX];
		char gs[512], ws[512];
		int ng, nw = 0;

		c->sh->nr_lpis[cpu] = 0;
		vcpu_op(c, cpu, OP_POLL, 0, 0);
		ng = c->sh->nr_lpis[cpu];
		TEST_ASSERT(ng <= LOG_MAX, "%s: vCPU %d took %d interrupts", what, cpu, ng);
		memcpy(got, c->sh->lpis[cpu], ng * sizeof(u32));
		while (exp[cpu] && exp[cpu][nw])
			want[nw] = exp[cpu][nw], nw++;
		qsort(got, ng, sizeof(u32), cmp_u32);
		qsort(want, nw, sizeof(u32), cmp_u32);
		fmt_list(gs, sizeof(gs), got, ng);
		fmt_list(ws, sizeof(ws), want, nw);
		TEST_ASSERT(ng == nw && !memcmp(got, want, ng * sizeof(u32)),
			    "%s: vCPU %d took INTIDs %s, expected %s", what, cpu, gs, ws);
	}
}

#define L(...)		((const u32[]){ __VA_ARGS__, 0 })
#define NONE		NULL

static void drain(struct ctx *c)
{
	int cpu;

	for (cpu = 0; cpu < NR_VCPUS; cpu++)
		vcpu_op(c, cpu, OP_POLL, 0, 0);
}

/* Cases ------------------------------------------------------------------ */

/* a. MAPD/MAPC/MAPTI/MAPI, delivery, blocked MSIs, INT. */
static void case_map(void)
{
	struct ctx c;

	vm_setup(&c, false, SZ_64K);
	its_setup(&c);
	guest_cmds(&c,
		   cmd_mapc(0, 0, true), cmd_mapc(1, 1, true),
		   cmd_mapd(0, itt(&c, 0), 8, true),
		   cmd_mapd(1, big_itt(&c), 14, true),
		   cmd_mapti(0, 0, 0, LPI_BASE + 10),
		   cmd_mapti(0, 1, 1, LPI_BASE + 11),
		   cmd_mapti(0, 255, 0, LPI_BASE + 12),
		   cmd_mapi(1, 8200, 1),
		   cmd_mapi(1, 9000, 0),
		   cmd_sync(0), cmd_sync(1));

	msi_expect(&c, 0, 0, 1, "MAPTI (0,0)->c0");
	expect_lpis(&c, "MSI (0,0) after MAPTI to collection 0 (vCPU 0)", L(LPI_BASE + 10), NONE);
	msi_expect(&c, 0, 1, 1, "MAPTI (0,1)->c1");
	expect_lpis(&c, "MSI (0,1) after MAPTI to collection 1 (vCPU 1)", NONE, L(LPI_BASE + 11));
	msi_expect(&c, 0, 255, 1, "MAPTI (0,255)->c0");
	expect_lpis(&c, "MSI (0,255), last event of an 8-bit ITT", L(LPI_BASE + 12), NONE);
	msi_expect(&c, 1, 8200, 1, "MAPI (1,8200)->c1");
	expect_lpis(&c, "MSI (1,8200) after MAPI to collection 1", NONE, L(8200));
	msi_expect(&c, 1, 9000, 1, "MAPI (1,9000)->c0");
	expect_lpis(&c, "MSI (1,9000) after MAPI to collection 0", L(9000), NONE);

	/* Two MSIs to two vCPUs at once. */
	msi_expect(&c, 0, 0, 1, "(0,0) again");
	msi_expect(&c, 1, 8200, 1, "(1,8200) again");
	expect_lpis(&c, "MSIs (0,0) and (1,8200) together", L(LPI_BASE + 10), L(8200));

	/* Unmapped: event, device, out-of-range event. */
	msi_expect(&c, 0, 2, 0, "unmapped EventID 2 of mapped device 0");
	msi_expect(&c, 7, 0, 0, "unmapped DeviceID 7");
	msi_expect(&c, 0, 256, 0, "EventID 256 beyond device 0's 8-bit ITT");
	msi_expect(&c, 1, 8201, 0, "unmapped EventID 8201 of device 1");
	expect_lpis(&c, "after blocked MSIs", NONE, NONE);

	/* The guest's INT command. */
	guest_cmds(&c, cmd_int(0, 1), cmd_int(1, 9000), cmd_sync(0));
	expect_lpis(&c, "INT (0,1) and INT (1,9000)", L(9000), L(LPI_BASE + 11));
	/* INT of an unmapped pair does nothing. */
	guest_cmds(&c, cmd_int(0, 3), cmd_int(5, 0), cmd_sync(0));
	expect_lpis(&c, "INT of unmapped (0,3) and (5,0)", NONE, NONE);

	/* MAPD V=0 unmaps the device and its events. */
	guest_cmds(&c, cmd_mapd(0, 0, 8, false), cmd_sync(0));
	msi_expect(&c, 0, 0, 0, "(0,0) after MAPD V=0 of device 0");
	msi_expect(&c, 1, 8200, 1, "(1,8200) after MAPD V=0 of device 0");
	expect_lpis(&c, "after MAPD V=0 of device 0", NONE, L(8200));
	vm_teardown(&c);
}

/* b. MOVI and MOVALL. */
static void case_move(void)
{
	struct ctx c;

	vm_setup(&c, false, SZ_64K);
	its_setup(&c);
	guest_cmds(&c,
		   cmd_mapc(0, 0, true), cmd_mapc(1, 1, true),
		   cmd_mapd(0, itt(&c, 0), 4, true),
		   cmd_mapti(0, 0, 0, LPI_BASE + 20), cmd_mapti(0, 1, 0, LPI_BASE + 21),
		   cmd_mapti(0, 2, 0, LPI_BASE + 22), cmd_mapti(0, 3, 0, LPI_BASE + 23),
		   cmd_sync(0));

	msi_expect(&c, 0, 0, 1, "(0,0)");
	expect_lpis(&c, "(0,0) on collection 0", L(LPI_BASE + 20), NONE);

	guest_cmds(&c, cmd_movi(0, 0, 1), cmd_sync(0));
	msi_expect(&c, 0, 0, 1, "(0,0) after MOVI to c1");
	expect_lpis(&c, "(0,0) after MOVI to collection 1", NONE, L(LPI_BASE + 20));
	msi_expect(&c, 0, 1, 1, "(0,1)");
	expect_lpis(&c, "(0,1), not moved", L(LPI_BASE + 21), NONE);

	/* MOVI of a pending LPI moves the pending state too. */
	msi_expect(&c, 0, 1, 1, "(0,1) before MOVI");
	guest_cmds(&c, cmd_movi(0, 1, 1), cmd_sync(0));
	expect_lpis(&c, "(0,1) pending on vCPU 0 when MOVIed to collection 1",
		    NONE, L(LPI_BASE + 21));
	guest_cmds(&c, cmd_movi(0, 1, 0), cmd_movi(0, 0, 0), cmd_sync(0));

	/* MOVALL: pending LPIs of redistributor 0 go to redistributor 1. */
	msi_expect(&c, 0, 1, 1, "(0,1) before MOVALL");
	msi_expect(&c, 0, 2, 1, "(0,2) before MOVALL");
	msi_expect(&c, 0, 3, 1, "(0,3) before MOVALL");
	guest_cmds(&c, cmd_movall(0, 1), cmd_sync(1));
	expect_lpis(&c, "LPIs pending on vCPU 0, after MOVALL 0->1",
		    NONE, L(LPI_BASE + 21, LPI_BASE + 22, LPI_BASE + 23));

	/* Re-point collection 0 at redistributor 1. */
	guest_cmds(&c, cmd_mapc(0, 1, true), cmd_sync(1));
	msi_expect(&c, 0, 0, 1, "(0,0) after MAPC c0->1");
	msi_expect(&c, 0, 2, 1, "(0,2) after MAPC c0->1");
	expect_lpis(&c, "after MOVALL 0->1 and MAPC collection 0 -> vCPU 1",
		    NONE, L(LPI_BASE + 20, LPI_BASE + 22));
	/* And back. */
	guest_cmds(&c, cmd_movall(1, 0), cmd_mapc(0, 0, true), cmd_sync(0));
	msi_expect(&c, 0, 3, 1, "(0,3) after MAPC c0->0");
	expect_lpis(&c, "after MOVALL 1->0 and MAPC collection 0 -> vCPU 0",
		    L(LPI_BASE + 23), NONE);
	vm_teardown(&c);
}

/* c. DISCARD and CLEAR. */
static void case_discard_clear(void)
{
	struct ctx c;

	vm_setup(&c, false, SZ_64K);
	its_setup(&c);
	guest_cmds(&c,
		   cmd_mapc(0, 0, true), cmd_mapc(1, 1, true),
		   cmd_mapd(0, itt(&c, 0), 4, true),
		   cmd_mapti(0, 0, 0, LPI_BASE + 30), cmd_mapti(0, 1, 1, LPI_BASE + 31),
		   cmd_mapti(0, 2, 0, LPI_BASE + 32), cmd_sync(0));

	msi_expect(&c, 0, 0, 1, "(0,0) before DISCARD");
	expect_lpis(&c, "(0,0) before DISCARD", L(LPI_BASE + 30), NONE);
	guest_cmds(&c, cmd_discard(0, 0), cmd_sync(0));
	msi_expect(&c, 0, 0, 0, "(0,0) after DISCARD");
	expect_lpis(&c, "(0,0) after DISCARD", NONE, NONE);
	msi_expect(&c, 0, 1, 1, "(0,1) after DISCARD of (0,0)");
	expect_lpis(&c, "(0,1) after DISCARD of (0,0)", NONE, L(LPI_BASE + 31));
	/* The event can be mapped again, to another INTID. */
	guest_cmds(&c, cmd_mapti(0, 0, 1, LPI_BASE + 33), cmd_sync(0));
	msi_expect(&c, 0, 0, 1, "(0,0) re-mapped after DISCARD");
	expect_lpis(&c, "(0,0) re-mapped after DISCARD", NONE, L(LPI_BASE + 33));

	/* CLEAR drops the pending state of a disabled LPI. */
	set_prop(&c, LPI_BASE + 31, PROP_DIS);
	guest_cmds(&c, cmd_inv(0, 1), cmd_sync(1));
	msi_expect(&c, 0, 1, 1, "(0,1) while disabled");
	expect_lpis(&c, "(0,1) while disabled", NONE, NONE);
	guest_cmds(&c, cmd_clear(0, 1), cmd_sync(1));
	set_prop(&c, LPI_BASE + 31, PROP_EN);
	guest_cmds(&c, cmd_inv(0, 1), cmd_sync(1));
	expect_lpis(&c, "(0,1) made pending while disabled, CLEARed, enabled+INV", NONE, NONE);

	/* Without CLEAR it is delivered once enabled. */
	set_prop(&c, LPI_BASE + 32, PROP_DIS);
	guest_cmds(&c, cmd_inv(0, 2), cmd_sync(0));
	msi_expect(&c, 0, 2, 1, "(0,2) while disabled");
	expect_lpis(&c, "(0,2) while disabled", NONE, NONE);
	set_prop(&c, LPI_BASE + 32, PROP_EN);
	guest_cmds(&c, cmd_inv(0, 2), cmd_sync(0));
	expect_lpis(&c, "(0,2) pending while disabled, enabled+INV, no CLEAR",
		    L(LPI_BASE + 32), NONE);

	/* CLEAR of an enabled, not pending LPI changes nothing. */
	guest_cmds(&c, cmd_clear(0, 2), cmd_sync(0));
	msi_expect(&c, 0, 2, 1, "(0,2) after CLEAR");
	expect_lpis(&c, "(0,2) after CLEAR of a non-pending LPI", L(LPI_BASE + 32), NONE);
	vm_teardown(&c);
}

/* d. INV and INVALL after property table changes. */
static void case_inv(void)
{
	struct ctx c;

	vm_setup(&c, false, SZ_64K);
	its_setup(&c);
	guest_cmds(&c,
		   cmd_mapc(0, 0, true), cmd_mapc(1, 1, true),
		   cmd_mapd(0, itt(&c, 0), 4, true),
		   cmd_mapti(0, 0, 0, LPI_BASE + 40), cmd_mapti(0, 1, 1, LPI_BASE + 41),
		   cmd_mapti(0, 2, 1, LPI_BASE + 42), cmd_mapti(0, 3, 0, LPI_BASE + 43),
		   cmd_sync(0));

	set_prop(&c, LPI_BASE + 40, PROP_DIS);
	guest_cmds(&c, cmd_inv(0, 0), cmd_sync(0));
	msi_expect(&c, 0, 0, 1, "(0,0) disabled by INV");
	expect_lpis(&c, "(0,0) after disable+INV", NONE, NONE);
	set_prop(&c, LPI_BASE + 40, PROP_EN);
	guest_cmds(&c, cmd_inv(0, 0), cmd_sync(0));
	expect_lpis(&c, "(0,0) held pending, after enable+INV", L(LPI_BASE + 40), NONE);
	msi_expect(&c, 0, 0, 1, "(0,0) enabled again");
	expect_lpis(&c, "(0,0) enabled", L(LPI_BASE + 40), NONE);

	/* INVALL of collection 1: 41 and 42, not 43 (collection 0). */
	set_prop(&c, LPI_BASE + 41, PROP_DIS);
	set_prop(&c, LPI_BASE + 42, PROP_DIS);
	guest_cmds(&c, cmd_invall(1), cmd_sync(1));
	msi_expect(&c, 0, 1, 1, "(0,1) disabled by INVALL");
	msi_expect(&c, 0, 2, 1, "(0,2) disabled by INVALL");
	msi_expect(&c, 0, 3, 1, "(0,3) in collection 0");
	expect_lpis(&c, "after disable+INVALL(c1)", L(LPI_BASE + 43), NONE);
	set_prop(&c, LPI_BASE + 41, PROP_EN);
	set_prop(&c, LPI_BASE + 42, PROP_EN);
	guest_cmds(&c, cmd_invall(1), cmd_sync(1));
	expect_lpis(&c, "held pending, after enable+INVALL(c1)",
		    NONE, L(LPI_BASE + 41, LPI_BASE + 42));
	vm_teardown(&c);
}

/* e. Batches ending in SYNC: CREADR == CWRITER, Quiescent; queue wraps. */
static void case_sync(void)
{
	struct its_cmd cmds[MAX_CMDS];
	const u64 qsize = SZ_4K;	/* 128 commands: three batches wrap */
	u64 off = 0;
	int b, n, i;
	struct ctx c;

	vm_setup(&c, false, qsize);
	its_setup(&c);
	TEST_ASSERT(c.sh->creadr == 0 && c.sh->cwriter == 0,
		    "after CBASER: CREADR 0x%lx CWRITER 0x%lx, expected 0", c.sh->creadr,
		    c.sh->cwriter);
	for (b = 0; b < 3; b++) {
		n = 0;
		if (b == 0) {
			cmds[n++] = cmd_mapc(0, 0, true);
			cmds[n++] = cmd_mapc(1, 1, true);
		}
		cmds[n++] = cmd_mapd(b, itt(&c, b), 6, true);
		for (i = 0; i < 45; i++)
			cmds[n++] = cmd_mapti(b, i, i % 2, LPI_BASE + 100 * b + i);
		cmds[n++] = cmd_sync(0);
		cmds[n++] = cmd_sync(1);
		__guest_cmds(&c, true, n, cmds);
		off = (off + n * 32) % qsize;
		TEST_ASSERT(c.sh->creadr == off && c.sh->cwriter == off,
			    "batch %d of %d commands then SYNC: guest read CREADR 0x%lx CWRITER 0x%lx, expected 0x%lx",
			    b, n, c.sh->creadr, c.sh->cwriter, off);
		TEST_ASSERT(c.sh->ctlr & GITS_CTLR_QUIESCENT,
			    "batch %d: GITS_CTLR 0x%lx without Quiescent", b, c.sh->ctlr);
		TEST_ASSERT(c.sh->ctlr & GITS_CTLR_ENABLE,
			    "batch %d: GITS_CTLR 0x%lx without Enable", b, c.sh->ctlr);
		/* The batch's first and last mappings are in effect. */
		msi_expect(&c, b, 0, 1, "first MAPTI of the batch");
		msi_expect(&c, b, 43, 1, "next to last MAPTI of the batch");
		msi_expect(&c, b, 44, 1, "last MAPTI of the batch");
		msi_expect(&c, b, 45, 0, "unmapped event after the batch");
		expect_lpis(&c, "first and last events of the batch",
			    L(LPI_BASE + 100 * b, LPI_BASE + 100 * b + 44),
			    L(LPI_BASE + 100 * b + 43));
	}
	TEST_ASSERT(off < 3 * 48 * 32, "queue did not wrap");
	vm_teardown(&c);
}

/* f. KVM_VITS_GRP_TRANSLATE. */
static int translate(struct ctx *c, u32 devid, u32 ev, struct kvm_vits_translation *t)
{
	memset(t, 0xa5, sizeof(*t));
	return __kvm_device_attr_get(c->its_fd, KVM_VITS_GRP_TRANSLATE,
				     ((u64)devid << 32) | ev, t);
}

static void expect_translation(struct ctx *c, u32 devid, u32 ev, u32 intid, u32 icid,
			       u32 vcpu, const char *what)
{
	struct kvm_vits_translation t;
	int ret = translate(c, devid, ev, &t);

	TEST_ASSERT(!ret, "%s: TRANSLATE(%u,%u) failed: %s", what, devid, ev, strerror(errno));
	TEST_ASSERT(t.intid == intid && t.icid == icid && t.vcpu == vcpu && t.flags == 0,
		    "%s: TRANSLATE(%u,%u) = {intid %u icid 0x%x vcpu 0x%x flags 0x%x}, expected {%u 0x%x 0x%x 0}",
		    what, devid, ev, t.intid, t.icid, t.vcpu, t.flags, intid, icid, vcpu);
}

static void expect_no_translation(struct ctx *c, u32 devid, u32 ev, const char *what)
{
	struct kvm_vits_translation t;
	int ret = translate(c, devid, ev, &t);

	TEST_ASSERT(ret && errno == ENOENT, "%s: TRANSLATE(%u,%u) returned %d (%s), expected ENOENT",
		    what, devid, ev, ret, ret ? strerror(errno) : "ok");
}

static void case_translate(void)
{
	struct kvm_vits_translation t;
	struct ctx c;
	int ret;

	vm_setup(&c, false, SZ_64K);
	if (!c.vits) {
		ret = translate(&c, 0, 0, &t);
		TEST_ASSERT(ret && errno == ENXIO,
			    "built-in ITS: KVM_VITS_GRP_TRANSLATE returned %d (%s), expected ENXIO",
			    ret, ret ? strerror(errno) : "ok");
		vm_teardown(&c);
		skip_case("built-in ITS has no KVM_VITS_GRP_TRANSLATE (ENXIO, as expected)");
	}
	its_setup(&c);
	guest_cmds(&c,
		   cmd_mapc(0, 0, true), cmd_mapc(1, 1, true), cmd_mapc(5, 1, true),
		   cmd_mapd(0, itt(&c, 0), 4, true), cmd_mapd(1, big_itt(&c), 14, true),
		   cmd_mapti(0, 0, 0, LPI_BASE + 50), cmd_mapti(0, 3, 5, LPI_BASE + 51),
		   cmd_mapi(1, 8400, 1), cmd_sync(0));

	expect_translation(&c, 0, 0, LPI_BASE + 50, 0, 0, "MAPTI (0,0)");
	expect_translation(&c, 0, 3, LPI_BASE + 51, 5, 1, "MAPTI (0,3) c5");
	expect_translation(&c, 1, 8400, 8400, 1, 1, "MAPI (1,8400)");
	expect_no_translation(&c, 0, 1, "unmapped event");
	expect_no_translation(&c, 2, 0, "unmapped device");
	expect_no_translation(&c, 0, 16, "event beyond the ITT");

	guest_cmds(&c, cmd_movi(0, 0, 1), cmd_sync(0));
	expect_translation(&c, 0, 0, LPI_BASE + 50, 1, 1, "after MOVI (0,0) -> c1");
	msi_expect(&c, 0, 0, 1, "(0,0) after MOVI");
	expect_lpis(&c, "(0,0) after MOVI, as translated", NONE, L(LPI_BASE + 50));

	guest_cmds(&c, cmd_mapc(5, 0, true), cmd_sync(0));
	expect_translation(&c, 0, 3, LPI_BASE + 51, 5, 0, "after MAPC c5 -> vCPU 0");

	guest_cmds(&c, cmd_discard(0, 0), cmd_sync(0));
	expect_no_translation(&c, 0, 0, "after DISCARD (0,0)");

	guest_cmds(&c, cmd_mapc(5, 0, false), cmd_sync(0));
	expect_translation(&c, 0, 3, LPI_BASE + 51, 0xffffffff, KVM_VITS_NO_VCPU,
			   "after MAPC c5 V=0");
	msi_expect(&c, 0, 3, 0, "(0,3) with its collection unmapped");

	guest_cmds(&c, cmd_mapd(1, 0, 14, false), cmd_sync(0));
	expect_no_translation(&c, 1, 8400, "after MAPD V=0 of device 1");
	expect_lpis(&c, "nothing delivered", NONE, NONE);
	vm_teardown(&c);
}

/* g. kvm_vits cannot go while a VM uses it. */
static void case_unload(void)
{
	struct ctx c;
	int err;

	if (!want_vits)
		skip_case("needs kvm_vits (run as 'vits')");
	load_vits();
	vm_setup(&c, false, SZ_64K);
	its_setup(&c);
	guest_cmds(&c, cmd_mapc(0, 0, true), cmd_mapd(0, itt(&c, 0), 4, true),
		   cmd_mapti(0, 0, 0, LPI_BASE + 60), cmd_sync(0));
	err = try_unload_vits();
	if (!err)
		load_vits();
	TEST_ASSERT(err == EBUSY || err == EWOULDBLOCK,
		    "delete_module(kvm_vits) with a live VM: %s, expected EBUSY/EWOULDBLOCK",
		    err ? strerror(err) : "succeeded");
	TEST_ASSERT(vits_loaded(), "kvm_vits gone");
	/* Still serves the VM after the refused unload. */
	msi_expect(&c, 0, 0, 1, "(0,0) after refused unload");
	expect_lpis(&c, "(0,0) after refused unload", L(LPI_BASE + 60), NONE);
	TEST_ASSERT(read_dbg("its") >= 1, "debugfs its: %ld live ITS", read_dbg("its"));
	vm_teardown(&c);

	err = try_unload_vits();
	TEST_ASSERT(!err, "delete_module(kvm_vits) after the VM was freed: %s", strerror(err));
	TEST_ASSERT(!vits_loaded(), "kvm_vits still loaded after delete_module");
	load_vits();
}

/* h. Save on one backend, restore on the other. */
struct h_map { u32 devid, ev, intid, vcpu; };

static const struct h_map h_maps[2][6] = {
	{ { 0, 0, LPI_BASE + 100, 0 }, { 0, 7, LPI_BASE + 101, 1 },
	  { 3, 1, LPI_BASE + 102, 1 }, { 3, 255, LPI_BASE + 103, 0 },
	  { 40, 2, LPI_BASE + 104, 0 }, { 6, 8500, 8500, 1 } },
	{ { 0, 0, LPI_BASE + 100, 0 }, { 0, 7, LPI_BASE + 101, 1 },
	  { 3, 1, LPI_BASE + 102, 1 }, { L2_ENTRIES + 5, 255, LPI_BASE + 103, 0 },
	  { L2_ENTRIES + 5, 2, LPI_BASE + 104, 0 }, { 6, 8500, 8500, 1 } },
};
static const u32 h_unmapped[][2] = { { 0, 1 }, { 3, 0 }, { 7, 0 }, { 40, 3 },
				     { L2_ENTRIES + 6, 0 }, { 6, 8501 } };

static void h_program(struct ctx *c, int ind)
{
	u32 dev2 = ind ? L2_ENTRIES + 5 : 40;

	its_setup(c);
	guest_cmds(c,
		   cmd_mapc(0, 0, true), cmd_mapc(1, 1, true), cmd_mapc(2, 0, true),
		   cmd_mapc(7, 1, true),
		   cmd_mapd(0, itt(c, 0), 8, true), cmd_mapd(3, itt(c, 1), 8, true),
		   cmd_mapd(dev2, itt(c, 2), 8, true), cmd_mapd(6, big_itt(c), 14, true),
		   cmd_mapti(0, 0, 0, LPI_BASE + 100), cmd_mapti(0, 7, 1, LPI_BASE + 101),
		   cmd_mapti(3, 1, 7, LPI_BASE + 102),
		   cmd_mapti(ind ? dev2 : 3, 255, 2, LPI_BASE + 103),
		   cmd_mapti(dev2, 2, 2, LPI_BASE + 104),
		   cmd_mapi(6, 8500, 1),
		   cmd_sync(0), cmd_sync(1));
}

static void h_check(struct ctx *c, int ind, const char *what)
{
	char buf[160];
	int i;

	for (i = 0; i < 6; i++) {
		const struct h_map *m = &h_maps[ind][i];
		u32 one[2] = { m->intid, 0 };

		snprintf(buf, sizeof(buf), "%s: MSI (%u,%u)", what, m->devid, m->ev);
		msi_expect(c, m->devid, m->ev, 1, buf);
		expect_lpis(c, buf, m->vcpu ? NONE : one, m->vcpu ? one : NONE);
	}
	for (i = 0; i < (int)ARRAY_SIZE(h_unmapped); i++) {
		snprintf(buf, sizeof(buf), "%s: unmapped pair", what);
		msi_expect(c, h_unmapped[i][0], h_unmapped[i][1], 0, buf);
	}
	expect_lpis(c, "after MSIs to unmapped pairs", NONE, NONE);
}

static const char *bname(int vits)
{
	return vits ? "vits" : "builtin";
}

/* Entries in [r, r + n64k * 64K) of a snapshot: with bit 63 set, or non-zero. */
static int count_entries(const struct snapshot *s, int r, int n64k, bool valid_bit)
{
	const u64 *e = (const u64 *)(s->mem + r * SZ_64K);
	int i, n = 0;

	for (i = 0; i < n64k * SZ_64K / ESZ; i++)
		n += valid_bit ? !!(e[i] & BIT_ULL(63)) : !!e[i];
	return n;
}

static void h_save_one(int ind, int vits)
{
	struct snapshot *s = &xs->snap[ind][vits];
	char what[64];
	struct ctx c;
	int i, ret;

	use_backend(vits);
	vm_setup(&c, ind, SZ_64K);
	TEST_ASSERT(c.vits == vits, "backend");
	h_program(&c, ind);
	snprintf(what, sizeof(what), "%s, before the save", bname(vits));
	h_check(&c, ind, what);

	ret = __kvm_device_attr_set(c.its_fd, KVM_DEV_ARM_VGIC_GRP_CTRL,
				    KVM_DEV_ARM_ITS_SAVE_TABLES, NULL);
	TEST_ASSERT(!ret, "%s: SAVE_TABLES: %s", bname(vits), strerror(errno));
	for (i = 0; i < (int)ARRAY_SIZE(its_reg_offs); i++) {
		ret = __kvm_device_attr_get(c.its_fd, KVM_DEV_ARM_VGIC_GRP_ITS_REGS,
					    its_reg_offs[i], &s->regs[i]);
		TEST_ASSERT(!ret, "%s: reading %s: %s", bname(vits), its_reg_names[i],
			    strerror(errno));
	}
	memcpy(s->mem, addr_gpa2hva(c.vm, c.base), SLOT_SIZE);
	s->backend = vits;
	s->base = c.base;
	/* The save really wrote the tables (ABI rev 0, 8-byte entries). */
	i = ind ? count_entries(s, R_L2, 2, true) : count_entries(s, R_DEV, 1, true);
	TEST_ASSERT(i == 4, "%s: %d valid DTEs in the saved device table, expected 4",
		    bname(vits), i);
	i = count_entries(s, R_COLL, 1, true);
	TEST_ASSERT(i == 4, "%s: %d valid CTEs in the saved collection table, expected 4",
		    bname(vits), i);
	i = count_entries(s, R_ITT, 4, false);
	TEST_ASSERT(i == 6, "%s: %d ITEs in the saved ITTs, expected 6", bname(vits), i);
	s->valid = true;
	vm_teardown(&c);
}

static void case_h_save(int ind)
{
	if (!want_vits)
		skip_case("switches backends, run as 'vits'");
	xs->snap[ind][0].valid = xs->snap[ind][1].valid = false;
	h_save_one(ind, 0);
	h_save_one(ind, 1);
	use_backend(true);
}

static void case_h_restore(int ind, int from_vits)
{
	/* IIDR first, BASERs, CBASER, CREADR, CWRITER; tables; then CTLR. */
	static const u32 order[] = { 1, 6, 7, 8, 9, 10, 11, 12, 13, 3, 5, 4 };
	struct snapshot *s = &xs->snap[ind][from_vits];
	int to_vits = !from_vits;
	char what[96];
	struct ctx c;
	int i, ret;

	if (!want_vits)
		skip_case("switches backends, run as 'vits'");
	if (!s->valid)
		skip_case("no %s snapshot (the save case failed)", bname(from_vits));

	use_backend(to_vits);
	vm_setup(&c, ind, SZ_64K);	/* LPIs enabled, no ITS command */
	TEST_ASSERT(c.vits == to_vits, "backend");
	/* Guest memory: the tables, ITTs, property and pending tables. */
	memcpy(addr_gpa2hva(c.vm, c.base), s->mem, SLOT_SIZE);

	for (i = 0; i < (int)ARRAY_SIZE(order); i++) {
		ret = __kvm_device_attr_set(c.its_fd, KVM_DEV_ARM_VGIC_GRP_ITS_REGS,
					    its_reg_offs[order[i]], &s->regs[order[i]]);
		TEST_ASSERT(!ret, "%s <- %s: restoring %s = 0x%lx: %s", bname(to_vits),
			    bname(from_vits), its_reg_names[order[i]], s->regs[order[i]],
			    strerror(errno));
	}
	ret = __kvm_device_attr_set(c.its_fd, KVM_DEV_ARM_VGIC_GRP_CTRL,
				    KVM_DEV_ARM_ITS_RESTORE_TABLES, NULL);
	TEST_ASSERT(!ret, "%s <- %s: RESTORE_TABLES: %s", bname(to_vits), bname(from_vits),
		    strerror(errno));
	ret = __kvm_device_attr_set(c.its_fd, KVM_DEV_ARM_VGIC_GRP_ITS_REGS, GITS_CTLR,
				    &s->regs[0]);
	TEST_ASSERT(!ret, "%s <- %s: restoring GITS_CTLR: %s", bname(to_vits),
		    bname(from_vits), strerror(errno));

	snprintf(what, sizeof(what), "restored on %s from a %s save (%s device table)",
		 bname(to_vits), bname(from_vits), ind ? "2-level" : "flat");
	h_check(&c, ind, what);
	vm_teardown(&c);
	use_backend(true);
}

static void case_h_compare(int ind)
{
	struct snapshot *b = &xs->snap[ind][0], *v = &xs->snap[ind][1];
	static const struct { int r; u32 len; const char *name; } rg[] = {
		{ R_DEV, SZ_64K, "device table" }, { R_COLL, SZ_64K, "collection table" },
		{ R_L2, SZ_64K, "L2 device table 0" }, { R_L2 + 1, SZ_64K, "L2 device table 1" },
		{ R_ITT, 4 * SZ_64K, "ITTs" },
	};
	int i, ndiff = 0, nreg = 0;
	u32 off;

	if (!want_vits)
		skip_case("needs both backends, run as 'vits'");
	if (!b->valid || !v->valid)
		skip_case("missing snapshot (the save case failed)");

	for (i = 0; i < (int)ARRAY_SIZE(its_reg_offs); i++) {
		if (b->regs[i] == v->regs[i])
			continue;
		nreg++;
		printf("# %s: builtin 0x%lx, vits 0x%lx\n", its_reg_names[i],
		       b->regs[i], v->regs[i]);
	}
	for (i = 0; i < (int)ARRAY_SIZE(rg); i++) {
		u64 *eb = (u64 *)(b->mem + rg[i].r * SZ_64K);
		u64 *ev = (u64 *)(v->mem + rg[i].r * SZ_64K);

		for (off = 0; off < rg[i].len / 8; off++) {
			if (eb[off] == ev[off])
				continue;
			if (ndiff++ < 24)
				printf("# %s +0x%x (GPA 0x%lx): builtin 0x%016lx, vits 0x%016lx\n",
				       rg[i].name, off * 8,
				       b->base + (u64)rg[i].r * SZ_64K + off * 8,
				       eb[off], ev[off]);
		}
	}
	/* Whatever else is in the slot was written by the guest alone. */
	if (memcmp(b->mem, v->mem, SLOT_SIZE) && !ndiff)
		printf("# other memory differs between the snapshots\n");
	TEST_ASSERT(!ndiff && !nreg,
		    "%s device table: saved state differs between builtin and vits: %d table entries, %d registers (listed above)",
		    ind ? "2-level" : "flat", ndiff, nreg);
}

/* i. Guest fuzz, with MSIs from the host meanwhile. */
struct fuzz_host {
	struct ctx *c;
	atomic_bool stop;
	long msis, delivered, errors;
	long errnos[140];
	long polls;
};

static void *fuzz_msi_thread(void *arg)
{
	struct fuzz_host *f = arg;
	u64 s = 0x9e3779b97f4a7c15ULL;

	while (!atomic_load(&f->stop)) {
		u32 devid, ev;
		int ret;

		s ^= s << 13; s ^= s >> 7; s ^= s << 17;
		devid = s % 4 ? s % 8 : (u32)(s >> 20);
		ev = s % 5 ? (s >> 8) % 16 : (u32)(s >> 32);
		ret = signal_msi(f->c, devid, ev);
		f->msis++;
		if (ret == 1)
			f->delivered++;
		else if (ret < 0) {
			f->errors++;
			f->errnos[errno < 140 && errno > 0 ? errno : 0]++;
		}
		if (f->msis > 20000)
			usleep(1000);
	}
	return NULL;
}

static void *fuzz_vcpu1_thread(void *arg)
{
	struct fuzz_host *f = arg;

	while (!atomic_load(&f->stop)) {
		f->c->sh->nr_lpis[1] = 0;
		vcpu_op(f->c, 1, OP_POLL, 0, 0);
		f->polls++;
	}
	return NULL;
}

static void case_fuzz(void)
{
	struct fuzz_host f = {};
	pthread_t t_msi, t_vcpu;
	long live = 0;
	struct ctx c;
	int round;

	if (want_vits)
		live = read_dbg("its");
	vm_setup(&c, false, SZ_64K);
	its_setup(&c);
	guest_cmds(&c, cmd_mapc(0, 0, true), cmd_mapc(1, 1, true),
		   cmd_mapd(0, itt(&c, 0), 4, true), cmd_mapti(0, 0, 1, LPI_BASE + 70),
		   cmd_sync(0));

	f.c = &c;
	pthread_create(&t_msi, NULL, fuzz_msi_thread, &f);
	pthread_create(&t_vcpu, NULL, fuzz_vcpu1_thread, &f);
	for (round = 0; round < 4; round++)
		vcpu_op(&c, 0, OP_FUZZ, 0x1234567ULL * (round + 1), 40);
	atomic_store(&f.stop, true);
	pthread_join(t_msi, NULL);
	pthread_join(t_vcpu, NULL);
	printf("# fuzz: %lu commands, %lu register writes; %ld MSIs (%ld accepted, %ld errors), %ld vCPU 1 polls\n",
	       c.sh->fuzz_cmds, c.sh->fuzz_regs, f.msis, f.delivered, f.errors, f.polls);
	for (round = 0; round < 140; round++)
		if (f.errnos[round])
			printf("# fuzz: KVM_SIGNAL_MSI failed %ld times with %s\n", f.errnos[round],
			       round ? strerror(round) : "an odd errno");

	/* Valid tables again, a fresh mapping, and it must work. */
	its_setup(&c);
	guest_cmds(&c, cmd_mapc(0, 0, true), cmd_mapc(1, 1, true),
		   cmd_mapd(0, itt(&c, 0), 4, true), cmd_mapd(2, itt(&c, 2), 4, true),
		   cmd_mapti(0, 0, 1, LPI_BASE + 77), cmd_mapti(2, 3, 0, LPI_BASE + 78),
		   cmd_sync(0), cmd_sync(1));
	drain(&c);
	drain(&c);
	msi_expect(&c, 0, 0, 1, "(0,0) after the fuzz and a reset");
	msi_expect(&c, 2, 3, 1, "(2,3) after the fuzz and a reset");
	expect_lpis(&c, "after the fuzz and a reset", L(LPI_BASE + 78), L(LPI_BASE + 77));

	vcpu_op(&c, 0, OP_DONE, 0, 0);
	vcpu_op(&c, 1, OP_DONE, 0, 0);
	vm_teardown(&c);
	if (want_vits)
		TEST_ASSERT(read_dbg("its") == live, "kvm_vits: %ld live ITS after the VM was freed, expected %ld",
			    read_dbg("its"), live);
}

/* Driver ----------------------------------------------------------------- */

static void h_save_flat(void) { case_h_save(0); }
static void h_b2v_flat(void) { case_h_restore(0, 0); }
static void h_v2b_flat(void) { case_h_restore(0, 1); }
static void h_cmp_flat(void) { case_h_compare(0); }
static void h_save_2l(void) { case_h_save(1); }
static void h_b2v_2l(void) { case_h_restore(1, 0); }
static void h_v2b_2l(void) { case_h_restore(1, 1); }
static void h_cmp_2l(void) { case_h_compare(1); }

static const struct {
	const char *name;
	void (*fn)(void);
} cases[] = {
	{ "a_map_deliver", case_map },
	{ "b_movi_movall", case_move },
	{ "c_discard_clear", case_discard_clear },
	{ "d_inv_invall", case_inv },
	{ "e_sync_creadr", case_sync },
	{ "f_translate_attr", case_translate },
	{ "g_unload_refused", case_unload },
	{ "h_save_flat", h_save_flat },
	{ "h_restore_flat_builtin_to_vits", h_b2v_flat },
	{ "h_restore_flat_vits_to_builtin", h_v2b_flat },
	{ "h_tables_identical_flat", h_cmp_flat },
	{ "h_save_2level", h_save_2l },
	{ "h_restore_2level_builtin_to_vits", h_b2v_2l },
	{ "h_restore_2level_vits_to_builtin", h_v2b_2l },
	{ "h_tables_identical_2level", h_cmp_2l },
	{ "i_guest_fuzz", case_fuzz },
};

/* ---------------------------------------------------------------------- */
/* make bench: MSI injection while the guest keeps the command queue busy */
/* ---------------------------------------------------------------------- */

#define BUSY_LPIS	256
#define BUSY_INVALLS	16

static void *busy_vcpu(void *arg)
{
	struct ctx *c = arg;

	vcpu_op(c, 0, OP_BUSY, BUSY_INVALLS, 0);
	return NULL;
}

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/*
 * One VM with BUSY_LPIS events of one device mapped to vCPU 0; vCPU 0 runs
 * batches of BUSY_INVALLS INVALLs (each walks every LPI) with one CWRITER
 * write each, back to back, while this thread injects every event once
 * with KVM_SIGNAL_MSI, 200 us apart so that the injections sample the
 * queue's time evenly. First injections miss the translation cache, so
 * each takes the ITS's lock: an injection waits for what holds it. The
 * mean latency, in ns (the wait is rare and long, so the median hides it).
 */
static double busy_round(bool vits)
{
	static double lat[BUSY_LPIS];
	struct its_cmd cmds[MAX_CMDS];
	unsigned long batches;
	double mean;
	struct ctx c;
	pthread_t t;
	int i, k, n;

	use_backend(vits);
	vm_setup(&c, false, SZ_64K);
	its_setup(&c);
	guest_cmds(&c, cmd_mapc(0, 0, true), cmd_mapd(1, big_itt(&c), 8, true));
	for (i = 0; i < BUSY_LPIS; i += n) {
		n = BUSY_LPIS - i < MAX_CMDS ? BUSY_LPIS - i : MAX_CMDS;
		for (k = 0; k < n; k++)
			cmds[k] = cmd_mapti(1, i + k, 0, LPI_BASE + i + k);
		__guest_cmds(&c, true, n, cmds);
	}
	for (k = 0; k < BUSY_INVALLS; k++)
		c.sh->cmds[k] = cmd_invall(0);
	c.sh->stop = 0;
	c.sh->busy_batches = 0;
	TEST_ASSERT(!pthread_create(&t, NULL, busy_vcpu, &c), "pthread_create");
	while (READ_ONCE(c.sh->busy_batches) < 2)
		usleep(1000);
	for (i = 0; i < BUSY_LPIS; i++) {
		double t0 = now_ns();
		int ret = signal_msi(&c, 1, i);

		lat[i] = now_ns() - t0;
		TEST_ASSERT(ret == 1, "KVM_SIGNAL_MSI(1, %d) = %d", i, ret);
		usleep(200);
	}
	WRITE_ONCE(c.sh->stop, 1);
	pthread_join(t, NULL);
	batches = c.sh->busy_batches;
	vm_teardown(&c);
	qsort(lat, BUSY_LPIS, sizeof(lat[0]), stats_cmp_double);
	for (i = 0, mean = 0; i < BUSY_LPIS; i++)
		mean += lat[i] / BUSY_LPIS;
	printf("# busy-queue %s: %lu INVALL batches meanwhile; latency median %.0f, p99 %.0f, max %.0f, mean %.0f ns\n",
	       vits ? "vits" : "builtin", (unsigned long)batches, lat[BUSY_LPIS / 2],
	       lat[BUSY_LPIS * 99 / 100], lat[BUSY_LPIS - 1], mean);
	return mean;
}

/* busy_round() of the built-in ITS (0) or of kvm_vits (1). */
static double busy_side(int vits)
{
	return busy_round(vits);
}

/*
 * The rounds, alternating which backend goes first; prints every round and
 * the median ratio built-in/kvm_vits of the latencies (a speed ratio: above
 * 1, kvm_vits is faster) with its 95% bootstrap interval.
 */
static int bench_busy(int rounds)
{
	struct stats_ratio q;
	double b, v;

	if (rounds < 1 || rounds > STATS_MAX_ROUNDS)
		return 2;
	q = stats_time_rounds("busy-queue", rounds, busy_side, &b, &v);
	printf("# busy-queue MSI injection (KVM_SIGNAL_MSI, cache miss, mean of %d first injections a round, %d INVALLs a batch, %d rounds) builtin %.0f ns, vits %.0f ns: ratio (speed) vits/builtin %.3f [95%% %.3f, %.3f] %s\n",
	       BUSY_LPIS, BUSY_INVALLS, rounds, b, v, q.median, q.lo, q.hi, stats_verdict(q));
	unload_vits();
	return 0;
}

int main(int argc, char **argv)
{
	const char *only = argc > 2 ? argv[2] : NULL;
	int i, status, fails = 0;

	if (argc > 1 && !strcmp(argv[1], "bench-busy")) {
		if (!kvm_supports_vgic_v3())
			ksft_exit_skip("no GICv3 in KVM\n");
		xs = mmap(NULL, sizeof(*xs), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
			  -1, 0);
		return bench_busy(argc > 2 ? atoi(argv[2]) : 9);
	}
	if (argc < 2 || (strcmp(argv[1], "builtin") && strcmp(argv[1], "vits"))) {
		fprintf(stderr, "usage: %s builtin|vits [case prefix] | bench-busy [rounds]\n",
			argv[0]);
		return 2;
	}
	want_vits = !strcmp(argv[1], "vits");

	ksft_print_header();
	ksft_set_plan(ARRAY_SIZE(cases));
	if (!kvm_supports_vgic_v3())
		ksft_exit_skip("no GICv3 in KVM\n");

	xs = mmap(NULL, sizeof(*xs), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (xs == MAP_FAILED)
		ksft_exit_fail_msg("mmap: %s\n", strerror(errno));

	use_backend(want_vits);
	ksft_print_msg("backend: %s\n", want_vits ? "kvm_vits" : "built-in ITS");

	for (i = 0; i < (int)ARRAY_SIZE(cases); i++) {
		if (only && strncmp(cases[i].name, only, strlen(only))) {
			ksft_test_result_code(KSFT_SKIP, cases[i].name, "not selected");
			continue;
		}
		xs->reason[0] = 0;
		status = run_forked(cases[i].fn);
		/* A failed case may leave the wrong backend loaded. */
		if (want_vits && !vits_loaded())
			load_vits();
		cur_vits = want_vits;
		if (WIFEXITED(status) && WEXITSTATUS(status) == KSFT_SKIP)
			ksft_test_result_code(KSFT_SKIP, cases[i].name, "%s", xs->reason);
		else
			fails += report_forked(cases[i].name, status);
	}
	if (!want_vits && vits_loaded())
		ksft_print_msg("kvm_vits was loaded during a builtin run\n");
	ksft_print_cnts();
	return fails ? KSFT_FAIL : KSFT_PASS;
}
