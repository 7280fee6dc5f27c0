#!/usr/bin/env bash
# Train the shipped demo models (activation-nerf, activation-mipnerf, activation-nerfacto) on the
# generated `spheres` scene and strip their checkpoints to the weights (a few MB, no optimizer state).
#
# The models are reduced in width (CPU training): see README "Shipped models". The runs land in
# outputs/demo/spheres/<method>/run with relative paths in config.yml, so they work from any clone
# when this script is run from the repository root.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: scripts/train_demo_models.sh [-h] [-n] [METHOD ...]

Train the demo models on data/demo-spheres (generated if missing) into outputs/demo/spheres/.
METHOD: activation-nerf activation-mipnerf activation-nerfacto (default: all three).

  -h   show this help and exit
  -n   dry run: print the commands without running them
Environment: DEVICE (default cpu), ITERS_NERF (2000), ITERS_MIPNERF (2000), ITERS_NERFACTO (1500).
An existing run folder is not overwritten: remove it first to retrain.
USAGE
}

DRY=0
while getopts "hn" opt; do
  case $opt in
    h) usage; exit 0 ;;
    n) DRY=1 ;;
    *) usage >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
METHODS=("$@")
[ ${#METHODS[@]} -eq 0 ] && METHODS=(activation-nerf activation-mipnerf activation-nerfacto)

cd "$(dirname "$0")/.."
BIN=.venv/bin
[ -x "$BIN/ns-train" ] || BIN="$(dirname "$(command -v ns-train)")"
DATA=data/demo-spheres
OUT=outputs/demo
DEVICE=${DEVICE:-cpu}

run() {
  echo "+ $*"
  if [ "$DRY" -eq 0 ]; then "$@"; fi
}

# Shared by all three: CPU-friendly eval chunk, no periodic eval renders (they dominate on CPU).
common_flags() {
  local iters=$1
  echo --machine.device-type "$DEVICE" --vis tensorboard --output-dir "$OUT" --experiment-name spheres \
    --timestamp run --max-num-iterations "$iters" --steps-per-save "$iters" \
    --steps-per-eval-batch 500 --steps-per-eval-image 1000000 --steps-per-eval-all-images 1000000
}

# Position MLP 8 x 64 (the paper's depth, a quarter of its width), skip at layer 4, colour head 1 x 32.
NERF_MLP="--pipeline.model.base-mlp-num-layers 8 --pipeline.model.base-mlp-layer-width 64
  --pipeline.model.head-mlp-num-layers 1 --pipeline.model.head-mlp-layer-width 32
  --pipeline.model.skip-connections 4 --pipeline.model.eval-num-rays-per-chunk 2304
  --pipeline.datamanager.train-num-rays-per-batch 512"

flags_for() {
  case $1 in
    activation-nerf)
      echo "$(common_flags "${ITERS_NERF:-2000}") $NERF_MLP
        --pipeline.model.num-coarse-samples 32 --pipeline.model.num-importance-samples 64 --data $DATA" ;;
    activation-mipnerf)
      echo "$(common_flags "${ITERS_MIPNERF:-2000}") $NERF_MLP
        --pipeline.model.num-coarse-samples 32 --pipeline.model.num-importance-samples 32 --data $DATA" ;;
    activation-nerfacto)
      # Blender settings of the paper's nerfacto runs; proposal MLPs 4 x 64 on (64, 32) samples.
      echo "$(common_flags "${ITERS_NERFACTO:-1500}")
        --pipeline.datamanager.train-num-rays-per-batch 1024 --pipeline.model.eval-num-rays-per-chunk 2304
        --pipeline.model.proposal-mlp-layer-width 64 --pipeline.model.num-proposal-samples-per-ray 64 32
        --pipeline.model.num-nerf-samples-per-ray 24 --pipeline.model.num-levels 8
        --pipeline.model.log2-hashmap-size 15 --pipeline.model.hidden-dim 32
        --pipeline.model.hidden-dim-color 32 --pipeline.model.background-color white
        --pipeline.model.proposal-initial-sampler uniform --pipeline.model.disable-scene-contraction True
        --pipeline.model.distortion-loss-mult 0 --pipeline.model.use-average-appearance-embedding False
        --pipeline.model.near-plane 2.0 --pipeline.model.far-plane 6.0
        blender-data --data $DATA" ;;
    *) echo "unknown method: $1 (choose activation-nerf, activation-mipnerf, activation-nerfacto)" >&2; return 2 ;;
  esac
}

# The demo scene (48 x 48 px spheres, 40 train / 4 val / 4 test views, seed 0), as make demo makes it.
run "$BIN/python" -c "from nerfinternals.demo import ensure_scene; ensure_scene()"

for method in "${METHODS[@]}"; do
  flags=$(flags_for "$method")
  run_dir="$OUT/spheres/$method/run"
  if [ -e "$run_dir" ] && [ "$DRY" -eq 0 ]; then
    echo "skip $method: $run_dir exists (remove it to retrain)" >&2
    continue
  fi
  start=$(date +%s)
  # shellcheck disable=SC2086  # flags are whitespace-separated words by construction
  run "$BIN/ns-train" "$method" $flags
  run "$BIN/python" scripts/strip_checkpoint.py --run-dir "$run_dir"
  echo "$method: $(( $(date +%s) - start )) s"
done
