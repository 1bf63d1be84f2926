"""Reports (/hvs/v2/reports, /hvs/v2/report-jobs): judging verified evidence, signing and storing reports, the
job queue and ``secl-central worker``."""
