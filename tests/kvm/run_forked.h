/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared by our KVM tests: each case runs in a child process, so that a
 * failed assertion (TEST_ASSERT exits) fails that case only.
 */
#ifndef ARMSI_RUN_FORKED_H
#define ARMSI_RUN_FORKED_H

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest.h"

/* Runs @fn in a child; returns the child's wait status. */
static inline int run_forked(void (*fn)(void))
{
	int status;
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		ksft_exit_fail_msg("fork: %s\n", strerror(errno));
	if (!pid) {
		fn();
		fflush(stdout);
		_exit(0);
	}
	waitpid(pid, &status, 0);
	return status;
}

/*
 * Reports case @name from its child's wait @status as a TAP result; returns
 * 1 if it failed, else 0.
 */
static inline int report_forked(const char *name, int status)
{
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		ksft_test_result_pass("%s\n", name);
		return 0;
	}
	if (WIFSIGNALED(status))
		ksft_test_result_fail("%s (signal %d)\n", name, WTERMSIG(status));
	else
		ksft_test_result_fail("%s\n", name);
	return 1;
}

#endif
