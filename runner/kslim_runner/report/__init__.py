"""The job's report: report.json, report.md, pareto.png, and the termination message."""
