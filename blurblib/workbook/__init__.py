"""The notebooks' side: profiles, what each notebook trains, the instability scan and the remedies grid,
papermill parameters, the paper profile's CPU rehearsal, REPORT.md and cost estimates."""
