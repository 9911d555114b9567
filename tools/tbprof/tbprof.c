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
 * as lines "epoch phase vaddr insns count" (phase A or B, vaddr in hex), one
 * per segment that ran, then the counts start again from zero. The epoch
 * numbers the phases from 0, so modules loaded at different addresses in
 * different phases can still be named.
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
};

struct marker {
	int phase;		/* the phase the marker starts */
};

static struct seg *segs;
static pthread_mutex_t segs_lock = PTHREAD_MUTEX_INITIALIZER;
static int phase;
static unsigned int epoch;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *out;

static void seg_exec(unsigned int vcpu, void *u)
{
	struct seg *s = u;

	(void)vcpu;
	if (__atomic_load_n(&phase, __ATOMIC_RELAXED))
		__atomic_fetch_add(&s->count, s->n, __ATOMIC_RELAXED);
}

/* Writes the counts of the phase that ends, @p, and zeroes them. */
static void flush(int p)
{
	struct seg *s;

	pthread_mutex_lock(&segs_lock);
	s = segs;
	pthread_mutex_unlock(&segs_lock);
	pthread_mutex_lock(&out_lock);
	for (; s; s = s->next) {
		uint64_t c = __atomic_exchange_n(&s->count, 0, __ATOMIC_RELAXED);

		if (c)
			fprintf(out, "%u %c %llx %llu %llu\n", epoch, 'A' + p - 1,
				(unsigned long long)s->vaddr, (unsigned long long)s->n,
				(unsigned long long)c);
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
}

static int marker_phase(struct qemu_plugin_insn *insn)
{
	uint32_t op = 0;
	unsigned int imm;

	if (qemu_plugin_insn_data(insn, &op, sizeof(op)) != sizeof(op))
		return -1;
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

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
	size_t i, n = qemu_plugin_tb_n_insns(tb);
	struct seg *s = NULL;

	(void)id;
	for (i = 0; i < n; i++) {
		struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
		int p = marker_phase(insn);

		if (!s) {
			s = zalloc(sizeof(*s));
			s->vaddr = qemu_plugin_insn_vaddr(insn);
			seg_add(s);
			qemu_plugin_register_vcpu_insn_exec_cb(insn, seg_exec,
							       QEMU_PLUGIN_CB_NO_REGS, s);
		}
		s->n++;
		if (p >= 0) {
			struct marker *m = zalloc(sizeof(*m));

			m->phase = p;
			/* Runs after seg_exec when both are on this insn. */
			qemu_plugin_register_vcpu_insn_exec_cb(insn, marker_exec,
							       QEMU_PLUGIN_CB_NO_REGS, m);
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
		} else {
			fprintf(stderr, "tbprof: unknown argument %s (only out=FILE)\n", argv[i]);
			return -1;
		}
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
