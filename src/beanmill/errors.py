"""The one error hierarchy: every user-facing failure says what to do next."""

from __future__ import annotations


class BeanmillError(Exception):
    """Root of beanmill's errors; the CLI prints the message as one line and exits 2."""


class SpecError(BeanmillError):
    """The job spec could not be loaded or is incomplete."""


class QueueUnavailable(BeanmillError):
    """beanstalkd cannot be reached (wrong address, not running, not installed)."""


class CheckpointError(BeanmillError):
    """The checkpoint is corrupt, unreadable, or belongs to another job."""


class CursorError(BeanmillError):
    """The producer's cursor file is corrupt or belongs to another run."""


class QueueLost(BeanmillError):
    """The connection to beanstalkd broke mid-command: the only error a role reconnects on.

    Raised by the queue layer alone, so an OSError or ConnectionError from the user's own
    map() (a missing file, their database) is never taken for a lost queue."""


class QueueFull(BeanmillError):
    """beanstalkd cannot write its binlog (a full disk): raised only where no role waits for
    space, such as a command without a stop event; roles wait inside the queue layer."""


class UserCodeError(BeanmillError):
    """The user's code failed where no run can go on: importing the spec, setup(), items()."""


class MalformedMessage(BeanmillError):
    """A body on a tube is not something beanmill can use; it is buried, never crashes a role."""


class BadSignature(MalformedMessage):
    """A body's tag is missing or wrong for the role's secret: buried, never mapped or applied."""


class SecretFileError(BeanmillError):
    """The secret file is missing, empty, or readable by others."""


class CheckFailed(UserCodeError):
    """A dry run of the job spec found a problem that a real run would hit hours in."""
