"""The workload agent daemon. Installed as ``secl.workloadagent``; built by the workload issue."""
