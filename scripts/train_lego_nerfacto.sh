#!/usr/bin/env bash
# Train a reduced-width activation-nerfacto on the real lego scene at 100 x 100 px on the CPU: the
# stand-in for a full-size nerfacto in CPU benchmarks (the full-size one needs a GPU). The paper's
# Blender settings and sample counts ((256, 96) proposal + 48 field samples); proposal MLPs 4 x 64
# instead of 4 x 256, an 8-level hash grid. The run is not shipped (it is trained on third-party data):
# it lands in outputs/lego100/lego/activation-nerfacto/run, checkpoint stripped to its weights.
set -euo pipefail
usage() {
  cat <<'USAGE'
usage: scripts/train_lego_nerfacto.sh [-h] [-n] [DATA]
DATA: the lego scene in the Blender format (default ../shared/lego400).
  -h   show this help and exit
  -n   dry run: print the commands without running them
Environment: DEVICE (default cpu), ITERS (2000), OUT (outputs/lego100).
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
cd "$(dirname "$0")/.."
DATA=${1:-../shared/lego400}
OUT=${OUT:-outputs/lego100}
ITERS=${ITERS:-2000}
BIN=.venv/bin
[ -x "$BIN/ns-train" ] || BIN="$(dirname "$(command -v ns-train)")"
run() {
  echo "+ $*"
  if [ "$DRY" -eq 0 ]; then "$@"; fi
}
if [ ! -f "$DATA/transforms_train.json" ]; then
  echo "error: no Blender scene at $DATA (transforms_train.json missing)" >&2
  exit 2
fi
run_dir="$OUT/lego/activation-nerfacto/run"
if [ -e "$run_dir" ] && [ "$DRY" -eq 0 ]; then
  echo "error: $run_dir exists (remove it to retrain)" >&2
  exit 2
fi
start=$(date +%s)
run "$BIN/ns-train" activation-nerfacto \
  --machine.device-type "${DEVICE:-cpu}" --vis tensorboard --output-dir "$OUT" --experiment-name lego \
  --timestamp run --max-num-iterations "$ITERS" --steps-per-save "$ITERS" \
  --steps-per-eval-batch 500 --steps-per-eval-image 1000000 --steps-per-eval-all-images 1000000 \
  --pipeline.datamanager.camera-res-scale-factor 0.25 \
  --pipeline.datamanager.train-num-rays-per-batch 1024 --pipeline.model.eval-num-rays-per-chunk 2500 \
  --pipeline.model.proposal-mlp-layer-width 64 --pipeline.model.num-proposal-samples-per-ray 256 96 \
  --pipeline.model.num-nerf-samples-per-ray 48 --pipeline.model.num-levels 8 \
  --pipeline.model.log2-hashmap-size 17 --pipeline.model.hidden-dim 32 \
  --pipeline.model.hidden-dim-color 32 --pipeline.model.background-color white \
  --pipeline.model.proposal-initial-sampler uniform --pipeline.model.disable-scene-contraction True \
  --pipeline.model.distortion-loss-mult 0 --pipeline.model.use-average-appearance-embedding False \
  --pipeline.model.near-plane 2.0 --pipeline.model.far-plane 6.0 \
  blender-data --data "$DATA"
run "$BIN/python" scripts/strip_checkpoint.py --run-dir "$run_dir"
echo "activation-nerfacto on lego: $(( $(date +%s) - start )) s"
