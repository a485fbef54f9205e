"""Named exit codes: one table for every command and for systemd's RestartPreventExitStatus=."""

#: Every item counted (or the role stopped cleanly when asked to).
OK = 0
#: An unexpected crash: a bug in beanmill, or a fault it does not know; a restart may help.
ERROR = 1
#: A usage or configuration error (a bad flag, address, data dir or checkpoint): fix, then rerun.
USAGE = 2
#: The job finished, but some items failed their last attempt: fix, `requeue`, run again.
FAILED_ITEMS = 3
#: The user's own code failed where no run can go on (import, setup(), items()).
USER_CODE = 4
#: Stopped by a signal (Ctrl-C, SIGTERM) before the job's end: the same command resumes.
STOPPED = 130

#: `beanmill run --help` ends with this.
RUN_HELP = (
    "Exit status: 0 every item counted; 3 finished with failed items; 4 an error in the "
    "spec's code; 2 a usage or configuration error; 130 stopped before the end."
)
