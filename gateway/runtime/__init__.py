"""Runtime: the supervisor that starts and stops the pipeline's parts in a visible order, and the CLI."""
