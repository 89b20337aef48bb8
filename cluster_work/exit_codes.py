"""Every exit status cluster_work gives, in one place (a run's, a worker's, a guarded command's).

    EXIT_OK           0    everything asked for ran, or had run before
    EXIT_FAILED       1    a repetition raised (its traceback in its log), or a campaign's policy did
    EXIT_USAGE        2    bad input: one line naming the file and key, nothing written
    EXIT_STORE        3    results could not be written (full disk...): the run stopped, every file readable
    EXIT_ORPHANED     4    a worker whose parent (or MPI rank 0) went away ended itself
    EXIT_STALLED      5    an MPI worker was silent past --stall-timeout: rank 0 ended the run (its launcher,
                           killed, reports 137; the run's record in runs.jsonl says 5)
    EXIT_RUN_DIED     6    a run recorded its start but no end although its launcher exited 0 (rank 0 died with a
                           lost host): said by `python -m cluster_work.launch_check` after the launcher
    EXIT_CANNOT_RUN 127    a command experiment's program could not be started (as a shell says)
    EXIT_INTERRUPTED 130   stopped by a signal (or before its end): the same command resumes it

A run's status ranks them as `sweep.Summary.exit_status` does: stalled, store, usage, failed, interrupted."""
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_STORE, EXIT_ORPHANED, EXIT_STALLED, EXIT_RUN_DIED = 0, 1, 2, 3, 4, 5, 6
EXIT_CANNOT_RUN = 127
EXIT_INTERRUPTED = 130
