"""beanmill: restartable map/reduce over a mountain of items, on beanstalkd."""

from beanmill.errors import BeanmillError
from beanmill.jobspec import Job, Progress

__all__ = ["BeanmillError", "Job", "Progress"]
