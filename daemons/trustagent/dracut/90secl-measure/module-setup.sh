#!/bin/bash
# dracut module 90secl-measure: measure the files SecL manifests name into PCR 15 before switch-root.
#
# Packagers install this directory as /usr/lib/dracut/modules.d/90secl-measure. The measuring code comes
# from the initrd, never from the root it measures: install() copies secl-measure, the Python interpreter
# that runs it, the stdlib and the packages it imports (secl, tpm2-pytss, cryptography, click, defusedxml
# and their dependencies) at their own paths, with the shared libraries they link and the TSS's TCTI
# modules (which it loads with dlopen). `python -m secl.trustagent.initrdfiles` lists those files.
#
# Settings (a file in /etc/dracut.conf.d/):
#   secl_measure_command       the secl-measure to install (default: the one in dracut's PATH; set it for
#                              an installation in a venv, e.g. /opt/secl/bin/secl-measure)
#   secl_measure_manifest_dir  manifests in the real root (default /var/lib/secl/trustagent/manifests)
#   secl_measure_tcti          TPM for the PCR 15 extend (default device:/dev/tpmrm0)

_secl_command() {
    if [[ $secl_measure_command ]]; then
        [[ -x $secl_measure_command ]] && printf '%s\n' "$secl_measure_command"
    else
        command -v secl-measure
    fi
}

check() {
    # Included whenever secl-measure is installed (and always when asked for with --add secl-measure).
    _secl_command >/dev/null || return 1
    return 0
}

depends() {
    return 0
}

installkernel() {
    # The TPM drivers, so /dev/tpm0 and /dev/tpmrm0 exist before pre-pivot.
    instmods -o tpm tpm_tis tpm_tis_core tpm_crb tpm_tis_spi
}

_secl_python() {
    # The interpreter of the installed console script (its shebang): a venv's, or the system's.
    local script shebang
    script=$(_secl_command) || return 1
    IFS= read -r shebang <"$script"
    shebang=${shebang#\#!}
    printf '%s\n' "${shebang%% *}"
}

install() {
    local python list batch=() path
    python=$(_secl_python) || { derror "secl-measure: the console script was not found"; return 1; }
    list=$(mktemp) || return 1
    if ! "$python" -m secl.trustagent.initrdfiles >"$list"; then
        derror "secl-measure: $python cannot list the files secl-measure needs"
        rm -f "$list"
        return 1
    fi
    while IFS= read -r -d '' path; do
        batch+=("$path")
        if ((${#batch[@]} >= 256)); then
            inst_multiple "${batch[@]}" || { rm -f "$list"; return 1; }
            batch=()
        fi
    done <"$list"
    ((${#batch[@]})) && { inst_multiple "${batch[@]}" || { rm -f "$list"; return 1; }; }
    rm -f "$list"
    inst_libdir_file "libtss2-tcti-*.so*"
    inst_multiple -o mkdir mount umount
    # The hook's defaults, frozen at initrd build time (SECL_* in the hook's environment win).
    {
        printf 'secl_conf_measure=%q\n' "$(_secl_command)"
        printf 'secl_conf_manifest_dir=%q\n' "${secl_measure_manifest_dir:-/var/lib/secl/trustagent/manifests}"
        printf 'secl_conf_tcti=%q\n' "${secl_measure_tcti:-device:/dev/tpmrm0}"
    } >"$initdir/etc/secl-measure.conf"
    inst_hook pre-pivot 50 "$moddir/secl-measure-hook.sh"
}
