# Shared by scripts/launch_train_*.sh (sourced, not run). A launch script sets
#   METHOD          ns-train method, e.g. activation-nerf
#   DATAPARSER      ns-train dataparser subcommand, e.g. llff-data
#   DATA_ROOT       default data root (one folder per scene)
#   SCENES          array: default scenes
#   REQUIRED_FILE   file every scene folder must hold (else the scene is reported and skipped)
#   METHOD_OPTS     array: the authors' method settings
#   DATAPARSER_OPTS array: the authors' dataparser settings
#   DESCRIPTION     one line for -h
# and then calls: launch_main "$@"
#
# Environment: NS_TRAIN (default: ns-train on PATH, else the repository's .venv/bin/ns-train),
# NVIDIA_SMI (default: nvidia-smi).

_LAUNCH_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

_launch_die() {
    echo "error: $*" >&2
    exit 2
}

_launch_usage() {
    local name
    name="$(basename "$0")"
    cat <<EOF
Usage: $name [options] [GPU_ID ...] [-- NS_TRAIN_ARGS ...]

$DESCRIPTION

Launches one ns-train job per scene, spread round-robin over the GPUs:
  ns-train $METHOD <method settings> [NS_TRAIN_ARGS] --output-dir OUTPUT_ROOT \\
      --experiment-name SCENE --timestamp TIMESTAMP $DATAPARSER --data DATA_ROOT/SCENE \\
      <dataparser settings> [DATAPARSER_ARGS]
Each job's output goes to OUTPUT_ROOT/logs/SCENE_${METHOD}_TIMESTAMP.log; the run folder is
OUTPUT_ROOT/SCENE/$METHOD/TIMESTAMP. A scene folder that is missing (or lacks $REQUIRED_FILE)
is reported and skipped; the other scenes go on.

Options:
  -d, --data-root DIR        folder with one folder per scene (default: $DATA_ROOT)
  -o, --output-root DIR      ns-train --output-dir (default: outputs)
  -e, --scenes "A B ..."     scenes to train (default: ${SCENES[*]})
  -t, --timestamp TS         run timestamp (default: now, as %Y-%m-%d_%H%M%S)
  -p, --dataparser-args "ARGS"
                             extra $DATAPARSER arguments, after its defaults (so they override them)
  -m, --min-free-mib N       with no GPU_ID given, use GPUs with at least N MiB free (default: 10000)
  -s, --single               one job per GPU at a time (wait for the GPU's previous job)
  -n, --dry-run              print the ns-train commands, run nothing
  -h, --help                 show this help
  GPU_ID ...                 GPU indices to use (default: every GPU with free memory, from
                             nvidia-smi; without GPUs the jobs run one after another on the CPU
                             with --machine.device-type cpu)
  -- NS_TRAIN_ARGS           passed to ns-train after the method settings (so they override them)

Method settings (the authors'):
$(_launch_format_opts "${METHOD_OPTS[@]}")
Dataparser settings ($DATAPARSER):
$(_launch_format_opts "${DATAPARSER_OPTS[@]}")

To train, evaluate and tabulate many scenes and methods resumably, on this machine or on SLURM,
use ns-internals-sweep with these settings (docs/sweeps.md).
EOF
}

# "--flag value --flag2 value2" -> one "  --flag value" per line ("  (none)" for no arguments).
_launch_format_opts() {
    (($#)) || { echo "  (none)"; return 0; }
    local line=""
    while (($#)); do
        if [[ "$1" == --* && -n "$line" ]]; then
            echo "  $line"
            line=""
        fi
        line="${line:+$line }$1"
        shift
    done
    echo "  $line"
}

# Print the GPU indices with at least $1 MiB free, one per line (nothing without nvidia-smi).
_launch_free_gpus() {
    local smi="${NVIDIA_SMI:-nvidia-smi}" line index free
    command -v "$smi" >/dev/null 2>&1 || return 0
    "$smi" --query-gpu=index,memory.free --format=csv,noheader,nounits 2>/dev/null | while IFS= read -r line; do
        index="${line%%,*}"
        free="${line##*,}"
        index="${index//[[:space:]]/}"
        free="${free//[[:space:]]/}"
        if [[ "$index" =~ ^[0-9]+$ && "$free" =~ ^[0-9]+$ ]] && ((free >= $1)); then
            echo "$index"
        fi
    done
}

_launch_ns_train() {
    if [[ -n "${NS_TRAIN:-}" ]]; then
        echo "$NS_TRAIN"
    elif command -v ns-train >/dev/null 2>&1; then
        echo ns-train
    elif [[ -x "$_LAUNCH_REPO/.venv/bin/ns-train" ]]; then
        echo "$_LAUNCH_REPO/.venv/bin/ns-train"
    else
        echo ns-train
    fi
}

launch_main() {
    local data_root="$DATA_ROOT" output_root="outputs" timestamp="" min_free=10000
    local single=false dry_run=false scenes_arg="" dataparser_args=""
    local -a gpus=() extra=() scenes=()
    while (($#)); do
        case "$1" in
            -h | --help)
                _launch_usage
                return 0
                ;;
            -d | --data-root) data_root="${2:?$1 needs a value}"; shift 2 ;;
            -o | --output-root) output_root="${2:?$1 needs a value}"; shift 2 ;;
            -e | --scenes) scenes_arg="${2:?$1 needs a value}"; shift 2 ;;
            -t | --timestamp) timestamp="${2:?$1 needs a value}"; shift 2 ;;
            -p | --dataparser-args) dataparser_args="${2?$1 needs a value}"; shift 2 ;;
            -m | --min-free-mib) min_free="${2:?$1 needs a value}"; shift 2 ;;
            -s | --single) single=true; shift ;;
            -n | --dry-run) dry_run=true; shift ;;
            --)
                shift
                extra=("$@")
                break
                ;;
            -*) _launch_die "unknown option $1 (see $(basename "$0") -h)" ;;
            *)
                [[ "$1" =~ ^[0-9]+$ ]] || _launch_die "GPU ids must be integers, got '$1' (see $(basename "$0") -h)"
                gpus+=("$1")
                shift
                ;;
        esac
    done
    [[ "$min_free" =~ ^[0-9]+$ ]] || _launch_die "--min-free-mib must be an integer, got '$min_free'"
    if [[ -n "$scenes_arg" ]]; then
        read -r -a scenes <<<"${scenes_arg//,/ }"
    else
        scenes=("${SCENES[@]}")
    fi
    ((${#scenes[@]})) || _launch_die "no scenes given"
    [[ -n "$timestamp" ]] || timestamp="$(date +%Y-%m-%d_%H%M%S)"
    local -a dp_extra=()
    [[ -z "$dataparser_args" ]] || read -r -a dp_extra <<<"$dataparser_args"

    local device_opts=()
    if ((${#gpus[@]} == 0)); then
        mapfile -t gpus < <(_launch_free_gpus "$min_free")
        if ((${#gpus[@]} == 0)); then
            echo "no GPU with ${min_free} MiB free (or no nvidia-smi): training on the CPU, one job at a time"
            device_opts=(--machine.device-type cpu)
            gpus=(cpu)
            single=true
        fi
    fi
    echo "devices: ${gpus[*]}"

    local ns_train
    ns_train="$(_launch_ns_train)"
    local -a slot_pid=() pids=() cmd=()
    local idx=0 launched=0 skipped=0 failed=0 waited="" scene data log gpu pid
    if ! $dry_run; then
        mkdir -p "$output_root/logs"
        # stop the jobs started here when this script is interrupted
        trap 'trap - INT TERM; kill "${pids[@]}" 2>/dev/null; exit 130' INT TERM
    fi
    for scene in "${scenes[@]}"; do
        data="$data_root/$scene"
        if [[ ! -d "$data" ]]; then
            echo "missing scene folder $data: skipped" >&2
            skipped=$((skipped + 1))
            continue
        fi
        if [[ -n "${REQUIRED_FILE:-}" && ! -e "$data/$REQUIRED_FILE" ]]; then
            echo "scene folder $data has no $REQUIRED_FILE: skipped" >&2
            skipped=$((skipped + 1))
            continue
        fi
        gpu="${gpus[$idx]}"
        cmd=("$ns_train" "$METHOD" "${METHOD_OPTS[@]}" "${device_opts[@]}" "${extra[@]}"
            --output-dir "$output_root" --experiment-name "$scene" --timestamp "$timestamp"
            "$DATAPARSER" --data "$data" "${DATAPARSER_OPTS[@]}" "${dp_extra[@]}")
        if $dry_run; then
            if [[ "$gpu" == cpu ]]; then
                printf '%q ' "${cmd[@]}"
            else
                printf 'CUDA_VISIBLE_DEVICES=%s ' "$gpu"
                printf '%q ' "${cmd[@]}"
            fi
            echo
        else
            if $single && [[ -n "${slot_pid[$idx]:-}" ]]; then
                echo "waiting for device $gpu"
                wait "${slot_pid[$idx]}" || failed=$((failed + 1))
                waited+=" ${slot_pid[$idx]} "
            fi
            log="$output_root/logs/${scene}_${METHOD}_${timestamp}.log"
            if [[ "$gpu" == cpu ]]; then
                "${cmd[@]}" >"$log" 2>&1 &
            else
                CUDA_VISIBLE_DEVICES="$gpu" "${cmd[@]}" >"$log" 2>&1 &
            fi
            slot_pid[idx]=$!
            pids+=("$!")
            echo "launched $METHOD on $scene (device $gpu, log $log)"
        fi
        launched=$((launched + 1))
        idx=$(((idx + 1) % ${#gpus[@]}))
    done
    echo "$launched job(s) $($dry_run && echo "would be launched" || echo launched), $skipped scene(s) skipped"
    if ! $dry_run; then
        for pid in "${pids[@]}"; do
            [[ "$waited" == *" $pid "* ]] || wait "$pid" || failed=$((failed + 1))
        done
        ((failed == 0)) || { echo "$failed job(s) failed (see $output_root/logs)" >&2; return 1; }
    fi
    return 0
}
