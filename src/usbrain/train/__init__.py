"""Training: one explicit loop, self-describing checkpoints, distributed data parallel."""
