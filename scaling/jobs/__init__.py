"""The periodic jobs' own records: which Beat is active (a leader lease), and each task's last run."""
