"""Exit codes with names: one table for every command and for systemd's
RestartPreventExitStatus=."""

#: Every item counted, or the command did what it was asked.
OK = 0
#: beanmill itself failed (the queue, the disk, a bug): worth a restart.
ERROR = 1
#: A usage or configuration error: the same command will fail again.
USAGE = 2
#: Finished, but some items failed for good (buried): see `beanmill buried`.
FAILED_ITEMS = 3
#: The user's code (the job spec) failed: fix it before running again.
USER_CODE = 4
#: Stopped by SIGINT or SIGTERM; the same command resumes.
STOPPED = 130
