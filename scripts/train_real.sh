#!/usr/bin/env bash
# Train the named runs on real captures (../shared/real: fox, fern): reduced for this CPU by default,
# the authors' full-size settings on a GPU with FULL=1. The runs are not shipped (third-party data):
# they land in outputs/real/<scene>/<method>/run, checkpoint stripped to its weights.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: scripts/train_real.sh [-h] [-n] RUN [DATA]

Train RUN on a real capture: DATA (default: the run's scene below, relative to the repository root;
another capture of the same format trains the same recipe on it) into OUT/<scene>/<method>/run,
<scene> being DATA's folder name; then strip the checkpoint to its weights
(scripts/strip_checkpoint.py) and print the training time.

RUN:
  fox-activation-nerfacto       activation-nerfacto (MLP proposal networks), nerfstudio-data
                                --downscale-factor 4, scene contraction, stock near / far,
                                piecewise initial sampler; data ../shared/real/fox
  fox-nerfacto                  stock nerfacto (hash-grid proposal networks), torch implementation
                                (loads without tiny-cuda-nn), the same field and data; method
                                folder nerfacto; trained through scripts/ns_train_offline.py
                                (ns-train that builds LPIPS without downloading AlexNet)
  fern-activation-nerfacto-ndc  activation-nerfacto in NDC (the NDC collider), scene contraction,
                                uniform initial sampler; llff-data --downscale-factor 8
                                --scale-factor 0.75 --eval-interval 6; data ../shared/real/fern
  fern-activation-nerf-ndc      activation-nerf in NDC, background last_sample, 512 rays a batch,
                                the same llff-data settings; narrowed: position MLP 8 x 128
                                (skip at 4), colour head 2 x 64, 32 coarse + 64 fine samples

The fern runs hold out every 6th photo (LLFF's convention is every 8th): fern's 20 photos then give
4 eval views, 2 to choose settings on and 2 to report on (nerfinternals/views.py); every 8th would
leave 1 report view.

By default the nerfacto runs use the reduced recipe of scripts/train_lego_nerfacto.sh: field hash
grid of 8 levels (2^17 entries), hidden widths 32, proposal MLPs 4 x 64 (activation-nerfacto),
(256, 96) proposal + 48 field samples, 1024 rays a batch; all runs: distortion loss 0, no average
appearance embedding, camera optimizer off, no periodic eval images. FULL=1 uses the authors'
settings of scripts/launch_train_llff_{nerf,nerfacto,nerfacto_NDC}.sh instead (full-size models,
--downscale-factor 4 for every capture, ITERS 30000 nerfacto / 500000 NeRF, DEVICE cuda).

  -h   show this help and exit
  -n   dry run: check the data, print the commands without running them
Environment:
  ITERS       training iterations (default 2000; FULL=1: the authors')
  OUT         output root (default outputs/real)
  DEVICE      --machine.device-type (default cpu; FULL=1: cuda)
  DATA        the capture, when not given as an argument
  FULL        1: the authors' full-size settings (for a GPU)
  EXTRA_ARGS  more ns-train arguments (split at spaces), after the run's model settings and before
              the dataparser, so they override them (e.g. smaller models for a quick test)
A capture is checked first (LLFF: poses_bounds.npy N x 17 and N images in images_<d>/ or images/;
nerfstudio: transforms.json and its frames' images in images_<d>/). Bad data, an unknown RUN or an
existing run folder stop with one error line (exit 2); nothing is overwritten: remove a run folder
to retrain.
USAGE
}

die() {
  echo "error: $*" >&2
  exit 2
}

DRY=0
while getopts ":hn" opt; do
  case $opt in
    h) usage; exit 0 ;;
    n) DRY=1 ;;
    *) die "unknown option -$OPTARG (see scripts/train_real.sh -h)" ;;
  esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || die "no RUN given (see scripts/train_real.sh -h)"
[ $# -le 2 ] || die "too many arguments: $* (expected RUN [DATA])"
RUN=$1
FULL=${FULL:-0}
[[ "$FULL" == 0 || "$FULL" == 1 ]] || die "FULL must be 0 or 1, got '$FULL'"

# User-given paths are relative to the caller's folder; the defaults to the repository root.
absolute() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac }
USER_DATA=${2:-${DATA:-}}
[ -z "$USER_DATA" ] || USER_DATA=$(absolute "$USER_DATA")
[ -z "${OUT:-}" ] || OUT=$(absolute "$OUT")
cd "$(dirname "$0")/.."
OUT=${OUT:-outputs/real}
BIN=.venv/bin
[ -x "$BIN/ns-train" ] || BIN="$(dirname "$(command -v ns-train || echo .venv/bin/ns-train)")"

# ---- the runs -------------------------------------------------------------------------------------
# Reduced field of every nerfacto run on the CPU (as scripts/train_lego_nerfacto.sh).
NERFACTO_CPU=(
  --pipeline.datamanager.train-num-rays-per-batch 1024 --pipeline.model.eval-num-rays-per-chunk 2500
  --pipeline.model.num-proposal-samples-per-ray 256 96 --pipeline.model.num-nerf-samples-per-ray 48
  --pipeline.model.num-levels 8 --pipeline.model.log2-hashmap-size 17
  --pipeline.model.hidden-dim 32 --pipeline.model.hidden-dim-color 32
)
# The authors' nerfacto settings (scripts/launch_train_llff_nerfacto*.sh); model size: the method's.
NERFACTO_FULL=(
  --pipeline.datamanager.train-num-rays-per-batch 1024 --pipeline.datamanager.eval-num-rays-per-batch 2048
  --pipeline.model.eval-num-rays-per-chunk 2048
)
NERFACTO_BOTH=(
  --pipeline.model.camera-optimizer.mode off --pipeline.model.use-average-appearance-embedding False
  --pipeline.model.distortion-loss-mult 0
)
NERF_BOTH=(
  --pipeline.datamanager.train-num-rays-per-batch 512 --pipeline.model.background-color last_sample
  --pipeline.model.use-ndc-collider True
)
NERF_CPU=(
  --pipeline.model.base-mlp-num-layers 8 --pipeline.model.base-mlp-layer-width 128
  --pipeline.model.skip-connections 4 --pipeline.model.head-mlp-num-layers 2
  --pipeline.model.head-mlp-layer-width 64 --pipeline.model.num-coarse-samples 32
  --pipeline.model.num-importance-samples 64 --pipeline.model.eval-num-rays-per-chunk 2048
)
ns_train=("$BIN/ns-train")
if [ "$FULL" = 1 ]; then NERFACTO_SIZE=("${NERFACTO_FULL[@]}"); else NERFACTO_SIZE=("${NERFACTO_CPU[@]}"); fi
case $RUN in
  fox-activation-nerfacto | fox-nerfacto)
    scene=fox format=nerfstudio dataparser=nerfstudio-data factor=4 full_iters=30000
    model=(--pipeline.model.proposal-initial-sampler piecewise --pipeline.model.disable-scene-contraction False)
    if [ "$RUN" = fox-nerfacto ]; then
      method=nerfacto
      # stock nerfacto would download LPIPS' AlexNet weights when it is built: build it offline
      ns_train=("$BIN/python" scripts/ns_train_offline.py)
      model+=(--pipeline.model.implementation torch)
    else
      method=activation-nerfacto
      [ "$FULL" = 1 ] || model+=(--pipeline.model.proposal-mlp-layer-width 64)
    fi
    model=("${NERFACTO_SIZE[@]}" "${NERFACTO_BOTH[@]}" "${model[@]}")
    parser=() ;;
  fern-activation-nerfacto-ndc)
    scene=fern format=llff dataparser=llff-data factor=8 full_iters=30000 method=activation-nerfacto
    model=(--pipeline.model.proposal-initial-sampler uniform --pipeline.model.disable-scene-contraction False
      --pipeline.model.use-ndc-collider True)
    [ "$FULL" = 1 ] || model+=(--pipeline.model.proposal-mlp-layer-width 64)
    model=("${NERFACTO_SIZE[@]}" "${NERFACTO_BOTH[@]}" "${model[@]}")
    parser=(--scale-factor 0.75 --eval-interval 6) ;;
  fern-activation-nerf-ndc)
    scene=fern format=llff dataparser=llff-data factor=8 full_iters=500000 method=activation-nerf
    model=("${NERF_BOTH[@]}")
    [ "$FULL" = 1 ] || model+=("${NERF_CPU[@]}")
    parser=(--scale-factor 0.75 --eval-interval 6) ;;
  *)
    die "unknown run '$RUN' (choose fox-activation-nerfacto, fox-nerfacto, fern-activation-nerfacto-ndc, fern-activation-nerf-ndc)" ;;
esac

if [ "$FULL" = 1 ]; then
  factor=4
  ITERS=${ITERS:-$full_iters}
  DEVICE=${DEVICE:-cuda}
  schedule=()  # the method's checkpoint and eval schedule
else
  ITERS=${ITERS:-2000}
  DEVICE=${DEVICE:-cpu}
  # one checkpoint at the end; no periodic eval images (they dominate on a CPU)
  schedule=(--steps-per-save "$ITERS" --steps-per-eval-batch 500 --steps-per-eval-image 1000000
    --steps-per-eval-all-images 1000000)
fi
[[ "$ITERS" =~ ^[1-9][0-9]*$ ]] || die "ITERS must be a positive integer, got '$ITERS'"
DATA=${USER_DATA:-../shared/real/$scene}
DATA=${DATA%/}
[ -d "$DATA" ] || die "capture folder not found: $DATA"
"$BIN/python" scripts/check_capture.py "$format" "$DATA" "$factor" || exit 2
scene=$(basename "$DATA")
run_dir="$OUT/$scene/$method/run"
[ ! -e "$run_dir" ] || die "$run_dir exists (remove it to retrain)"
read -r -a extra <<<"${EXTRA_ARGS:-}"

run() {
  printf '+'
  printf ' %q' "$@"
  echo
  if [ "$DRY" -eq 0 ]; then "$@"; fi
}
start=$(date +%s)
run "${ns_train[@]}" "$method" \
  --machine.device-type "$DEVICE" --vis tensorboard --output-dir "$OUT" --experiment-name "$scene" \
  --timestamp run --max-num-iterations "$ITERS" "${schedule[@]}" "${model[@]}" "${extra[@]}" \
  "$dataparser" --data "$DATA" --downscale-factor "$factor" "${parser[@]}"
run "$BIN/python" scripts/strip_checkpoint.py --run-dir "$run_dir"
seconds=$(($(date +%s) - start))
[ "$DRY" -eq 1 ] || echo "$RUN on $scene: trained in $seconds s ($((seconds / 60)) min), run $run_dir"
