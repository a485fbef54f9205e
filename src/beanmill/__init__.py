"""beanmill: restartable map/reduce over a mountain of items, on beanstalkd."""

from beanmill.deferred import import_structlog

import_structlog()  # first: before any module of ours imports structlog

from beanmill.errors import BeanmillError  # noqa: E402
from beanmill.jobspec import Job, Progress  # noqa: E402

__all__ = ["BeanmillError", "Job", "Progress"]
