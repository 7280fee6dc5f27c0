#!/usr/bin/env bash
# Evaluate every trained run under an output root with nerfinternals/eval.py and collect one results
# table (results.md + results.json, via scripts/collect_results.py). Usage: launch_eval.sh -h
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() {
    cat <<EOF
Usage: $(basename "$0") [options] [-- EVAL_ARGS ...]

Runs nerfinternals/eval.py on every run (a folder with config.yml, as ns-train writes them:
OUTPUT_ROOT/<scene>/<method>/<timestamp>/) one after another, so the timings do not disturb each
other, then collects each run's EVAL_DIR/summary.json into RESULTS_DIR/results.md and results.json:
mean PSNR / SSIM / LPIPS / time ratio / MAC ratio per method, dataset kind and experiment.

Options:
  -o, --output-root DIR   folder holding the runs, searched recursively (default: outputs)
  -r, --results-dir DIR   where to write results.md / results.json (default: OUTPUT_ROOT)
  -e, --eval-dir NAME     eval.py --output-dir, relative to each run (default: eval)
  -g, --gpu ID            CUDA_VISIBLE_DEVICES for the evaluations (default: unchanged)
  -f, --force             re-evaluate runs that already have EVAL_DIR/summary.json (eval.py --overwrite)
  -c, --collect-only      do not evaluate; only collect the existing summaries
  -n, --dry-run           print the eval.py commands and the collect command, run nothing
  -h, --help              show this help
  -- EVAL_ARGS            passed to eval.py, e.g. -- --layer 0 1 --fct 1 --upsample

Environment: PYTHON (default: the repository's .venv/bin/python if present, else python3).

ns-internals-sweep --stages eval collect does the same resumably, also on SLURM (docs/sweeps.md).
EOF
}

die() {
    echo "error: $*" >&2
    exit 2
}

output_root="outputs"
results_dir=""
eval_dir="eval"
gpu=""
force=false
collect_only=false
dry_run=false
eval_args=()
while (($#)); do
    case "$1" in
        -h | --help)
            usage
            exit 0
            ;;
        -o | --output-root) output_root="${2:?$1 needs a value}"; shift 2 ;;
        -r | --results-dir) results_dir="${2:?$1 needs a value}"; shift 2 ;;
        -e | --eval-dir) eval_dir="${2:?$1 needs a value}"; shift 2 ;;
        -g | --gpu) gpu="${2:?$1 needs a value}"; shift 2 ;;
        -f | --force) force=true; shift ;;
        -c | --collect-only) collect_only=true; shift ;;
        -n | --dry-run) dry_run=true; shift ;;
        --)
            shift
            eval_args=("$@")
            break
            ;;
        *) die "unknown argument $1 (see $(basename "$0") -h)" ;;
    esac
done
[[ -d "$output_root" ]] || die "output root not found: $output_root"
[[ -n "$results_dir" ]] || results_dir="$output_root"

if [[ -n "${PYTHON:-}" ]]; then
    python="$PYTHON"
elif [[ -x "$REPO/.venv/bin/python" ]]; then
    python="$REPO/.venv/bin/python"
else
    python=python3
fi

mapfile -t runs < <(find "$output_root" -name config.yml -type f -print | sort)
((${#runs[@]})) || die "no runs (config.yml) under $output_root"
echo "${#runs[@]} run(s) under $output_root"

failed=0
if ! $collect_only; then
    for config in "${runs[@]}"; do
        run="$(dirname "$config")"
        if [[ -f "$run/$eval_dir/summary.json" ]] && ! $force; then
            echo "already evaluated (use -f to redo): $run"
            continue
        fi
        cmd=("$python" "$REPO/nerfinternals/eval.py" --load-config "$config" --output-dir "$eval_dir")
        $force && cmd+=(--overwrite)
        cmd+=("${eval_args[@]}")
        if $dry_run; then
            [[ -z "$gpu" ]] || printf 'CUDA_VISIBLE_DEVICES=%s ' "$gpu"
            printf '%q ' "${cmd[@]}"
            echo
        elif [[ -n "$gpu" ]]; then
            echo "evaluating $run"
            CUDA_VISIBLE_DEVICES="$gpu" "${cmd[@]}" || { failed=$((failed + 1)); echo "eval failed: $run" >&2; }
        else
            echo "evaluating $run"
            "${cmd[@]}" || { failed=$((failed + 1)); echo "eval failed: $run" >&2; }
        fi
    done
fi

collect=("$python" "$REPO/scripts/collect_results.py" "$output_root" --eval-dir "$eval_dir" --results-dir "$results_dir")
if $dry_run; then
    printf '%q ' "${collect[@]}"
    echo
    exit 0
fi
"${collect[@]}"
((failed == 0)) || { echo "$failed evaluation(s) failed" >&2; exit 1; }
