"""The job queue: submissions, the job state machine, retries, dead letters, leader failover."""
