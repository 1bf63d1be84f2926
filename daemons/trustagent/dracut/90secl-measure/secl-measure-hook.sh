#!/bin/sh
# dracut pre-pivot hook of 90secl-measure: measure every manifest of the trust agent's manifest directory
# in the real root (mounted at $NEWROOT, /sysroot) before switch-root, once per boot. secl-measure extends
# PCR 15 and writes the Measurement XMLs and measure-log.json under /run/secl, which the booted system
# keeps (dracut moves /run), so the trust agent serves exactly what was measured.
#
# Defaults come from /etc/secl-measure.conf (written by module-setup.sh); SECL_MANIFEST_DIR, SECL_TCTI,
# SECL_MEASURE, SECL_RUN_DIR and NEWROOT in the environment override them.
#
# The hook never stops the boot: a failure is logged (and left in /run/secl/measure.err for the agent's
# operator); the verifier then sees missing or mismatching measurements and reports the host untrusted.

secl_measure_run() {
    _secl_conf=${SECL_MEASURE_CONF:-/etc/secl-measure.conf}
    [ -r "$_secl_conf" ] && . "$_secl_conf"
    _secl_root=${NEWROOT:-/sysroot}
    _secl_manifests="$_secl_root${SECL_MANIFEST_DIR:-${secl_conf_manifest_dir:-/var/lib/secl/trustagent/manifests}}"
    _secl_rundir=${SECL_RUN_DIR:-/run/secl}
    _secl_done="$_secl_rundir/.measured"

    [ -e "$_secl_done" ] && return 0  # once per boot, even if pre-pivot runs again
    if [ ! -d "$_secl_manifests" ]; then
        echo "secl-measure: no manifest directory $_secl_manifests; nothing measured" >&2
        return 0
    fi
    mkdir -p "$_secl_rundir" && chmod 0750 "$_secl_rundir"
    set -- "$_secl_manifests"/*.xml
    if [ ! -e "$1" ]; then
        echo "secl-measure: no manifests in $_secl_manifests; nothing measured" >&2
        : >"$_secl_done"
        return 0
    fi
    # /run starts empty each boot: the event log and the XMLs belong to this boot's PCR 15 only. Every
    # setting is given on the command line: the initramfs has no trust agent configuration to read.
    PYTHONDONTWRITEBYTECODE=1 \
        "${SECL_MEASURE:-${secl_conf_measure:-secl-measure}}" --manifest-dir "$_secl_manifests" --root "$_secl_root" --skip-missing \
        --tcti "${SECL_TCTI:-${secl_conf_tcti:-device:/dev/tpmrm0}}" --output "$_secl_rundir/measurements" \
        --event-log "$_secl_rundir/measure-log.json" 2>"$_secl_rundir/measure.err"
    _secl_status=$?
    if [ "$_secl_status" -ne 0 ]; then
        echo "secl-measure: failed with status $_secl_status: $(cat "$_secl_rundir/measure.err")" >&2
    fi
    : >"$_secl_done"
    return 0
}

secl_measure_run
