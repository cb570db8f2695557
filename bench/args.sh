# shellcheck shell=bash
# The command line every bench script shares; sourced first, before common.sh, so `--help`
# makes no temp dir. The script defines `quick` (what `--quick` lowers) before sourcing this.
#
#   (no argument)  full run
#   --quick        smoke run: calls the script's `quick` function
#   -h, --help     prints the script's header comment

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
case "${1:-}" in
"") ;;
--quick) quick ;;
-h | --help)
    usage
    exit 0
    ;;
*)
    usage >&2
    exit 2
    ;;
esac
