// SPDX-License-Identifier: GPL-2.0
/*
 * The ratio of a benchmark's alternating rounds, for the shell benchmarks:
 * reads one "upstream ours" pair of rates (higher is faster) per line and
 * prints the medians and the median of the per-round ratios ours/upstream
 * with its 95% bootstrap interval (tests/bench/stats.h):
 *
 *   upstream=<median> ours=<median> ratio=<r> [95% <lo>, <hi>] <verdict>
 */
#include <stdio.h>

#include "stats.h"

int main(void)
{
	double up[STATS_MAX_ROUNDS], us[STATS_MAX_ROUNDS], ratio[STATS_MAX_ROUNDS];
	struct stats_ratio q;
	int n = 0;

	while (n < STATS_MAX_ROUNDS && scanf("%lf %lf", &up[n], &us[n]) == 2) {
		if (up[n] <= 0 || us[n] <= 0)
			continue;
		ratio[n] = us[n] / up[n];
		n++;
	}
	if (!n) {
		printf("no rounds\n");
		return 1;
	}
	q = stats_ratio(ratio, n);
	printf("upstream=%.0f ours=%.0f ratio=%.3f [95%% %.3f, %.3f] %s\n", stats_median(up, n),
	       stats_median(us, n), q.median, q.lo, q.hi, stats_verdict(q));
	return 0;
}
