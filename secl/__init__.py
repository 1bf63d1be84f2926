"""secl: TPM-rooted platform security for the datacenter.

``secl.core`` holds the evidence formats and their verification with no I/O; ``secl.host`` what every
compute-host part shares (TPM adapter, measuring engine, enrollment with the central); ``secl.cli`` is the
admin command line; ``secl.central``, ``secl.trustagent``, ``secl.workloadagent`` and ``secl.hooks`` are
the central server, the compute-host daemons and the libvirt hook.
"""

__version__ = "0.1.0"
