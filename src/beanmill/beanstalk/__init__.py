"""Everything that speaks to beanstalkd: the connection roles use (`connection`), pipelined
commands, the private server `beanmill run` starts, waits on a full binlog disk, and the
leases that keep one reducer and one producer per job."""
