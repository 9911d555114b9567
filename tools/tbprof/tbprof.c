// SPDX-License-Identifier: GPL-2.0
/*
 * tbprof: a QEMU TCG plugin that counts the guest instructions executed from
 * each code address, split into phases that the guest itself switches with
 * three architectural NOPs:
 *
 *   hint #0x7c   phase 0 (not counted)
 *   hint #0x7d   phase A
 *   hint #0x7e   phase B
 *
 * `make profile` runs one side of a benchmark in phase A and the other in
 * phase B in one boot, then scripts/profsym.py names the addresses.
 *
 * Counting: each translated block is cut into segments that end at a marker
 * (the marker is the last instruction of the phase it ends). A segment adds
 * its length to its count when it starts, if a phase is on, so the counts
 * are exact for code that runs to the end of its segment; an exception
 * taken inside a segment counts the segment's remaining instructions as
 * executed. There is one phase for the whole machine: mark one thread's
 * work on an otherwise idle guest.
 *
 * Output (out=FILE, default tbprof.out): each time a phase ends, its counts
 * as lines "epoch phase vaddr insns count sysregs indirect cross other
 * jlookups jmisses" (phase A or B, vaddr in hex), one per segment that ran:
 * its length, how often it ran, the MRS/MSR it ran, how its block was left
 * unchained (see seg_exec()), and how often the block was entered through
 * the jump cache and missed in its model (see jc_hash()); then the counts
 * start again from zero. The epoch numbers the phases from 0, so modules
 * loaded at different addresses in different phases can still be named.
 *
 * mem=on adds a model of where the guest's data accesses would miss, to
 * tell locality from work: per instruction, its accesses in the phase and
 * how many miss in QEMU's softmmu TLB as it starts (direct-mapped, 256
 * entries, 8 victims), in a 4096-entry one, and in a host-like 2 MiB 16-way
 * cache of 64-byte lines; guest virtual addresses, one model per vCPU,
 * kept warm outside the phases. A TLBI empties the vCPU's TLB models, as
 * QEMU flushes the whole TLB for most of the kernel's. Lines
 * "epoch phase M vaddr accesses tlb256 tlb4096 cache" per instruction, and
 * "epoch phase T tlbis" per phase.
 *
 * count=off leaves out the counting (only the markers are instrumented)
 * and time=on writes each phase's wall-clock span, "epoch phase W start end"
 * in CLOCK_MONOTONIC nanoseconds: with both, `perf record` of QEMU can tell
 * which host code each phase ran (scripts/profhost.py).
 *
 * The plugin API is declared here, not taken from QEMU's headers (Debian
 * does not package them): API version 4, QEMU 9.2 and later. QEMU refuses
 * to load the plugin, naming the versions, if it does not support it.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>

#define EXPORT __attribute__((visibility("default")))

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
typedef struct {
	const char *target_name;
	struct {
		int min;
		int cur;
	} version;
	bool system_emulation;
	/* More fields follow in QEMU; this plugin reads none of them. */
} qemu_info_t;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS = 0 };

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id,
					   void (*cb)(qemu_plugin_id_t, struct qemu_plugin_tb *));
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
size_t qemu_plugin_insn_data(const struct qemu_plugin_insn *insn, void *dest, size_t len);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn,
					    void (*cb)(unsigned int, void *),
					    enum qemu_plugin_cb_flags flags, void *userdata);
typedef uint32_t qemu_plugin_meminfo_t;
enum qemu_plugin_mem_rw { QEMU_PLUGIN_MEM_RW = 3 };
void qemu_plugin_register_vcpu_mem_cb(struct qemu_plugin_insn *insn,
				      void (*cb)(unsigned int, qemu_plugin_meminfo_t, uint64_t,
						 void *),
				      enum qemu_plugin_cb_flags flags, enum qemu_plugin_mem_rw rw,
				      void *userdata);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, void (*cb)(qemu_plugin_id_t, void *),
				    void *userdata);

EXPORT int qemu_plugin_version = 4;

/* Encoding of HINT #imm: 0xd503201f | imm << 5, imm in 0..127. */
#define HINT_MASK (~(0x7fu << 5))
#define HINT_BASE 0xd503201fu
#define MARK_FIRST 0x7c
#define MARK_LAST 0x7e

struct seg {
	struct seg *next;
	uint64_t vaddr;
	uint64_t n;
	uint64_t count;		/* instructions run in the current phase */
	/* How its block starts and ends, and how the block was left. */
	uint64_t tb_start;	/* the block's first instruction */
	bool tb_first, tb_end;	/* the segment starts, ends the block */
	char end;		/* the block's last insn: i(ndirect), b(ranch), o(ther) */
	uint64_t sysregs;	/* MRS and MSR (register) instructions in it */
	uint64_t indirect, cross, other;	/* exits, in the current phase */
	/* Entries into the block through QEMU's jump cache, and its misses. */
	uint64_t jlook, jmiss;
};

#define MAX_VCPUS 16

static struct seg *last_seg[MAX_VCPUS];	/* each touched by its vCPU only */

/*
 * A model of QEMU's per-vCPU jump cache (accel/tcg/tb-jmp-cache.h and
 * tb_jmp_cache_hash_func() in tb-hash.h, softmmu, 4 KiB pages): 4096 block
 * addresses, direct mapped; the top 6 bits of the index fold the page
 * number's bits 12-23, the low 6 the offset in the page. Every block entry
 * that is not chained looks its block up there; a miss costs a search of
 * the global hash table (qht_lookup_custom). Blocks on pages whose folded
 * numbers are equal, at offsets whose folded values are equal, evict each
 * other, so how often a path misses depends on where its code lies.
 */
#define JC_BITS 12
static uint64_t *jcache[MAX_VCPUS];	/* block address + 1, 0 empty */

static void *zalloc(size_t size);

static unsigned int jc_hash(uint64_t pc)
{
	uint64_t tmp = pc ^ (pc >> 6);

	return ((tmp >> 6) & 0xfc0) | (tmp & 0x3f);
}

/* Block @s entered through vCPU @vcpu's jump cache; counted if @on. */
static void jc_lookup(unsigned int vcpu, struct seg *s, bool on)
{
	uint64_t *e;
	bool miss;

	if (!jcache[vcpu])
		jcache[vcpu] = zalloc(sizeof(uint64_t) << JC_BITS);
	e = &jcache[vcpu][jc_hash(s->vaddr)];
	miss = *e != s->vaddr + 1;
	*e = s->vaddr + 1;
	if (on) {
		__atomic_fetch_add(&s->jlook, 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(&s->jmiss, miss, __ATOMIC_RELAXED);
	}
}

/* mem=on: one instruction's data accesses and modelled misses. */
struct msite {
	struct msite *next;
	uint64_t vaddr;
	uint64_t acc, tlb256, tlb4k, cache;
};

#define VICTIMS 8
#define CACHE_SETS 2048		/* 2 MiB: 2048 sets of 16 lines of 64 bytes */
#define CACHE_WAYS 16

struct tlb {
	unsigned int bits;
	uint64_t *tag;		/* page number + 1, 0 empty */
	uint64_t victim[VICTIMS];
	unsigned int next_victim;
};

/* Models are per vCPU, touched only by that vCPU's thread. */
struct model {
	struct tlb t256, t4k;
	uint64_t line[CACHE_SETS][CACHE_WAYS];	/* line + 1, most recent first */
};

static bool mem_on, count_on = true, time_on;
static uint64_t phase_start;
static struct model *models[MAX_VCPUS];
static struct msite *msites;
static uint64_t tlbis;

struct marker {
	int phase;		/* the phase the marker starts */
};

static struct seg *segs;
static pthread_mutex_t segs_lock = PTHREAD_MUTEX_INITIALIZER;
static int phase;
static unsigned int epoch;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *out;

/*
 * Also classifies how the vCPU's previous block was left for this one: QEMU
 * chains a direct branch or a fall-through to a block on the page the
 * branching block starts on; an indirect branch, a direct one to another
 * page and a block that ends without a branch (a system register write, an
 * exception) go through a lookup or out to the main loop.
 */
static void seg_exec(unsigned int vcpu, void *u)
{
	bool on = __atomic_load_n(&phase, __ATOMIC_RELAXED);
	struct seg *s = u, *l;

	if (on)
		__atomic_fetch_add(&s->count, s->n, __ATOMIC_RELAXED);
	if (vcpu >= MAX_VCPUS)
		return;
	l = last_seg[vcpu];
	last_seg[vcpu] = s;
	if (!s->tb_first)
		return;
	/* Not chained: looked up; the model is kept warm outside the phases. */
	if (!l || !l->tb_end || l->end != 'b' || (l->tb_start ^ s->vaddr) >> 12)
		jc_lookup(vcpu, s, on);
	if (!on || !l || !l->tb_end)
		return;
	if (l->end == 'i')
		__atomic_fetch_add(&l->indirect, 1, __ATOMIC_RELAXED);
	else if (l->end == 'o')
		__atomic_fetch_add(&l->other, 1, __ATOMIC_RELAXED);
	else if ((l->tb_start ^ s->vaddr) >> 12)
		__atomic_fetch_add(&l->cross, 1, __ATOMIC_RELAXED);
}

/* How a block that ends with @op is left: 'i', 'b' or 'o' (see seg_exec). */
static char end_kind(uint32_t op)
{
	if ((op & 0xfe000000u) == 0xd6000000u)
		return 'i';	/* BR, BLR, RET (and their PAuth forms), ERET */
	if ((op & 0x7c000000u) == 0x14000000u || (op & 0xff000010u) == 0x54000000u ||
	    (op & 0x7e000000u) == 0x34000000u || (op & 0x7e000000u) == 0x36000000u)
		return 'b';	/* B, BL, B.cond, CBZ/CBNZ, TBZ/TBNZ */
	return 'o';
}

/* MRS or MSR (register). */
static bool is_sysreg(uint32_t op)
{
	return (op & 0xffd00000u) == 0xd5100000u;
}

/* Whether @page misses in @t; fills it as QEMU's tlb_fill would. */
static bool tlb_miss(struct tlb *t, uint64_t page)
{
	uint64_t *e = &t->tag[page & ((1u << t->bits) - 1)];
	unsigned int i;

	if (*e == page + 1)
		return false;
	for (i = 0; i < VICTIMS; i++) {
		if (t->victim[i] == page + 1) {
			/* Swapped back into the main table, as victim_tlb_hit(). */
			t->victim[i] = *e;
			*e = page + 1;
			return false;
		}
	}
	if (*e) {
		t->victim[t->next_victim] = *e;
		t->next_victim = (t->next_victim + 1) % VICTIMS;
	}
	*e = page + 1;
	return true;
}

static void tlb_empty(struct tlb *t)
{
	memset(t->tag, 0, sizeof(*t->tag) << t->bits);
	memset(t->victim, 0, sizeof(t->victim));
}

/* Whether @line misses in the LRU cache model; makes it the most recent. */
static bool cache_miss(struct model *m, uint64_t line)
{
	uint64_t *set = m->line[line % CACHE_SETS];
	unsigned int i;
	bool hit;

	for (i = 0; i < CACHE_WAYS - 1 && set[i] != line + 1; i++)
		;
	/* A hit at i, or a miss that evicts the least recent (the last). */
	hit = set[i] == line + 1;
	memmove(set + 1, set, i * sizeof(*set));
	set[0] = line + 1;
	return !hit;
}

static struct model *model_of(unsigned int vcpu)
{
	struct model *m;

	if (vcpu >= MAX_VCPUS)
		return NULL;
	m = models[vcpu];
	if (!m) {
		m = zalloc(sizeof(*m));
		m->t256.bits = 8;
		m->t256.tag = zalloc(sizeof(uint64_t) << 8);
		m->t4k.bits = 12;
		m->t4k.tag = zalloc(sizeof(uint64_t) << 12);
		models[vcpu] = m;
	}
	return m;
}

static void mem_exec(unsigned int vcpu, qemu_plugin_meminfo_t info, uint64_t vaddr, void *u)
{
	struct model *m = model_of(vcpu);
	struct msite *s = u;
	bool t256, t4k, c;

	(void)info;
	if (!m)
		return;
	t256 = tlb_miss(&m->t256, vaddr >> 12);
	t4k = tlb_miss(&m->t4k, vaddr >> 12);
	c = cache_miss(m, vaddr >> 6);
	if (!__atomic_load_n(&phase, __ATOMIC_RELAXED))
		return;
	__atomic_fetch_add(&s->acc, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&s->tlb256, t256, __ATOMIC_RELAXED);
	__atomic_fetch_add(&s->tlb4k, t4k, __ATOMIC_RELAXED);
	__atomic_fetch_add(&s->cache, c, __ATOMIC_RELAXED);
}

static void tlbi_exec(unsigned int vcpu, void *u)
{
	struct model *m = model_of(vcpu);

	(void)u;
	if (m) {
		tlb_empty(&m->t256);
		tlb_empty(&m->t4k);
	}
	if (__atomic_load_n(&phase, __ATOMIC_RELAXED))
		__atomic_fetch_add(&tlbis, 1, __ATOMIC_RELAXED);
}

/* SYS with CRn = 8: TLBI. */
static bool is_tlbi(uint32_t op)
{
	return (op & 0xfff80000u) == 0xd5080000u && ((op >> 12) & 0xf) == 8;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

/* A counter's value, zeroed. */
static uint64_t take(uint64_t *p)
{
	return __atomic_exchange_n(p, 0, __ATOMIC_RELAXED);
}

/* Writes the counts of the phase that ends, @p, and zeroes them. */
static void flush(int p)
{
	struct msite *ms;
	struct seg *s;

	pthread_mutex_lock(&segs_lock);
	s = segs;
	pthread_mutex_unlock(&segs_lock);
	pthread_mutex_lock(&out_lock);
	if (time_on)
		fprintf(out, "%u %c W %llu %llu\n", epoch, 'A' + p - 1,
			(unsigned long long)phase_start, (unsigned long long)now_ns());
	for (; s; s = s->next) {
		uint64_t c = take(&s->count), xi = take(&s->indirect);
		uint64_t xc = take(&s->cross), xo = take(&s->other);
		uint64_t jl = take(&s->jlook), jm = take(&s->jmiss);

		if (c)
			fprintf(out, "%u %c %llx %llu %llu %llu %llu %llu %llu %llu %llu\n", epoch,
				'A' + p - 1, (unsigned long long)s->vaddr,
				(unsigned long long)s->n, (unsigned long long)c,
				(unsigned long long)(c / s->n * s->sysregs),
				(unsigned long long)xi, (unsigned long long)xc,
				(unsigned long long)xo, (unsigned long long)jl,
				(unsigned long long)jm);
	}
	if (mem_on) {
		pthread_mutex_lock(&segs_lock);
		ms = msites;
		pthread_mutex_unlock(&segs_lock);
		for (; ms; ms = ms->next) {
			uint64_t a = take(&ms->acc), t1 = take(&ms->tlb256);
			uint64_t t2 = take(&ms->tlb4k), c = take(&ms->cache);

			if (a)
				fprintf(out, "%u %c M %llx %llu %llu %llu %llu\n", epoch,
					'A' + p - 1, (unsigned long long)ms->vaddr,
					(unsigned long long)a, (unsigned long long)t1,
					(unsigned long long)t2, (unsigned long long)c);
		}
		fprintf(out, "%u %c T %llu\n", epoch, 'A' + p - 1,
			(unsigned long long)take(&tlbis));
	}
	fflush(out);
	epoch++;
	pthread_mutex_unlock(&out_lock);
}

static void marker_exec(unsigned int vcpu, void *u)
{
	struct marker *m = u;
	int old = __atomic_exchange_n(&phase, m->phase, __ATOMIC_RELAXED);

	(void)vcpu;
	/* The segment was counted when it started; the marker ends it. */
	if (old && old != m->phase)
		flush(old);
	if (m->phase && old != m->phase)
		phase_start = now_ns();
}

/* The phase the instruction @op starts if it is a marker, else -1. */
static int marker_phase(uint32_t op)
{
	unsigned int imm;

	if ((op & HINT_MASK) != HINT_BASE)
		return -1;
	imm = (op >> 5) & 0x7f;
	if (imm < MARK_FIRST || imm > MARK_LAST)
		return -1;
	return imm - MARK_FIRST;
}

static void *zalloc(size_t size)
{
	void *p = calloc(1, size);

	if (!p) {
		fprintf(stderr, "tbprof: out of memory\n");
		abort();
	}
	return p;
}

static void seg_add(struct seg *s)
{
	pthread_mutex_lock(&segs_lock);
	s->next = segs;
	segs = s;
	pthread_mutex_unlock(&segs_lock);
}

static void add_marker(struct qemu_plugin_insn *insn, int p)
{
	struct marker *m = zalloc(sizeof(*m));

	m->phase = p;
	qemu_plugin_register_vcpu_insn_exec_cb(insn, marker_exec, QEMU_PLUGIN_CB_NO_REGS, m);
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
	size_t i, n = qemu_plugin_tb_n_insns(tb);
	struct seg *s = NULL;
	uint64_t tb_start = n ? qemu_plugin_insn_vaddr(qemu_plugin_tb_get_insn(tb, 0)) : 0;

	(void)id;
	for (i = 0; i < n; i++) {
		struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
		/* 0 (UDF) when it cannot be read: no marker, sysreg or TLBI. */
		uint32_t op = 0;
		int p;

		if (qemu_plugin_insn_data(insn, &op, sizeof(op)) != sizeof(op))
			op = 0;
		p = marker_phase(op);

		if (!count_on) {
			if (p >= 0)
				add_marker(insn, p);
			continue;
		}
		if (!s) {
			s = zalloc(sizeof(*s));
			s->vaddr = qemu_plugin_insn_vaddr(insn);
			s->tb_start = tb_start;
			s->tb_first = i == 0;
			seg_add(s);
			qemu_plugin_register_vcpu_insn_exec_cb(insn, seg_exec,
							       QEMU_PLUGIN_CB_NO_REGS, s);
		}
		s->n++;
		s->sysregs += is_sysreg(op);
		if (i == n - 1) {
			s->tb_end = true;
			s->end = end_kind(op);
		}
		if (mem_on) {
			struct msite *ms = zalloc(sizeof(*ms));

			ms->vaddr = qemu_plugin_insn_vaddr(insn);
			pthread_mutex_lock(&segs_lock);
			ms->next = msites;
			msites = ms;
			pthread_mutex_unlock(&segs_lock);
			qemu_plugin_register_vcpu_mem_cb(insn, mem_exec, QEMU_PLUGIN_CB_NO_REGS,
							 QEMU_PLUGIN_MEM_RW, ms);
			if (is_tlbi(op))
				qemu_plugin_register_vcpu_insn_exec_cb(insn, tlbi_exec,
								       QEMU_PLUGIN_CB_NO_REGS, NULL);
		}
		if (p >= 0) {
			/* Runs after seg_exec, registered first on this insn. */
			add_marker(insn, p);
			s = NULL;
		}
	}
}

static void at_exit(qemu_plugin_id_t id, void *u)
{
	int p = __atomic_exchange_n(&phase, 0, __ATOMIC_RELAXED);

	(void)id;
	(void)u;
	/* A phase that never ended (the guest stopped inside it). */
	if (p)
		flush(p);
	if (fclose(out))
		perror("tbprof: output");
}

EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc,
			       char **argv)
{
	const char *path = "tbprof.out";
	int i;

	(void)info;
	for (i = 0; i < argc; i++) {
		if (!strncmp(argv[i], "out=", 4)) {
			path = argv[i] + 4;
		} else if (!strcmp(argv[i], "mem=on")) {
			mem_on = true;
		} else if (!strcmp(argv[i], "count=off")) {
			count_on = false;
		} else if (!strcmp(argv[i], "time=on")) {
			time_on = true;
		} else {
			fprintf(stderr,
				"tbprof: unknown argument %s (out=FILE, mem=on, count=off, time=on)\n",
				argv[i]);
			return -1;
		}
	}
	if (mem_on && !count_on) {
		fprintf(stderr, "tbprof: mem=on needs the counting (not count=off)\n");
		return -1;
	}
	out = fopen(path, "w");
	if (!out) {
		perror(path);
		return -1;
	}
	qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
	qemu_plugin_register_atexit_cb(id, at_exit, NULL);
	return 0;
}
