/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The statistics of our benchmarks: medians, and the median of per-round
 * ratios with a 95% bootstrap interval (2000 resamples, a fixed seed so a
 * run's raw samples reproduce its interval). A ratio's interval that spans
 * 1.0 is parity, not a win or a loss.
 */
#ifndef ARMSI_BENCH_STATS_H
#define ARMSI_BENCH_STATS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STATS_MAX_ROUNDS	64
#define STATS_RESAMPLES		2000

static inline int stats_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* The median of @v[0..n), which it sorts. */
static inline double stats_median(double *v, int n)
{
	qsort(v, n, sizeof(*v), stats_cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct stats_ratio {
	double median, lo, hi;
};

/* The median of @ratio[0..n) (left as it is) and its 95% interval. */
static inline struct stats_ratio stats_ratio(const double *ratio, int n)
{
	static double boot[STATS_RESAMPLES];
	double tmp[STATS_MAX_ROUNDS];
	uint64_t x = 0x9e3779b97f4a7c15ull;
	struct stats_ratio s;
	int i, k;

	if (n > STATS_MAX_ROUNDS)
		n = STATS_MAX_ROUNDS;
	for (k = 0; k < STATS_RESAMPLES; k++) {
		for (i = 0; i < n; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			tmp[i] = ratio[x % n];
		}
		boot[k] = stats_median(tmp, n);
	}
	qsort(boot, STATS_RESAMPLES, sizeof(boot[0]), stats_cmp_double);
	memcpy(tmp, ratio, n * sizeof(*ratio));
	s.median = stats_median(tmp, n);
	s.lo = boot[STATS_RESAMPLES / 40];
	s.hi = boot[STATS_RESAMPLES - 1 - STATS_RESAMPLES / 40];
	return s;
}

/*
 * Round @i of an A/B benchmark: @run(0) measures upstream's side, @run(1)
 * ours; which goes first alternates with @i, so that a drift over the boot
 * weighs on both sides alike.
 */
static inline void stats_pair(int i, double (*run)(int ours), double *up, double *ours)
{
	if (i % 2) {
		*ours = run(1);
		*up = run(0);
	} else {
		*up = run(0);
		*ours = run(1);
	}
}

/*
 * @rounds rounds of stats_pair() of @run, which returns a time (lower is
 * faster); prints each round as "# <label> round <i>: ..." and returns the
 * speed ratio ours/upstream (upstream's time over ours) with its interval.
 * The sides' median times go to *@up and *@ours.
 */
static inline struct stats_ratio stats_time_rounds(const char *label, int rounds,
						   double (*run)(int ours), double *up,
						   double *ours)
{
	double a[STATS_MAX_ROUNDS], b[STATS_MAX_ROUNDS], r[STATS_MAX_ROUNDS];
	struct stats_ratio q;
	int i;

	if (rounds > STATS_MAX_ROUNDS)
		rounds = STATS_MAX_ROUNDS;
	for (i = 0; i < rounds; i++) {
		stats_pair(i, run, &a[i], &b[i]);
		r[i] = a[i] / b[i];
		printf("# %s round %d: upstream %.0f ns, ours %.0f ns, ratio %.3f\n", label, i + 1,
		       a[i], b[i], r[i]);
		fflush(stdout);
	}
	q = stats_ratio(r, rounds);
	*up = stats_median(a, rounds);
	*ours = stats_median(b, rounds);
	return q;
}

/* "faster"/"slower"/"parity" for a speed ratio ours/upstream. */
static inline const char *stats_verdict(struct stats_ratio s)
{
	return s.lo > 1.0 ? "ours faster" : s.hi < 1.0 ? "ours slower" : "parity";
}

#endif
