"""Publishing GIGA-Piano runs: model cards filled from a run's records, Hub repos, the inference handler."""
