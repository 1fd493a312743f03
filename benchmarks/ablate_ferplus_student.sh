#!/bin/bash
# Equal-steps ablations of the FER+ student recipe (scripts/configs/ferplus_vit_tiny_cpu.yaml): the recipe as it is
# (soft distillation, vote targets), hard distillation, no teacher, majority labels; STEPS steps of 64 each (default
# 1,500 = 3.6 epochs, ~15 min each on two idle Xeon cores), the same cosine schedule, one after another. Needs the
# teacher (scripts/configs/ferplus_teacher_cpu.yaml). A finished variant is skipped; an interrupted one resumes.
# Then: python scripts/evaluate.py --model outputs/ablation_STEPS/V --datasets ../shared/data/ferplus
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-1500}
out=outputs/ablation_$STEPS
mkdir -p "$out"
for v in soft hard none majority; do
  case $v in
    soft) extra=() ;;
    hard) extra=(--distillation_type hard) ;;
    none) extra=(--teacher_model none) ;;
    majority) extra=(--label_mode majority) ;;
  esac
  [ -f "$out/$v/all_results.json" ] && continue
  echo "ablation $v: $out/$v ($out/$v.log)"
  accelerate launch scripts/train.py scripts/configs/ferplus_vit_tiny_cpu.yaml --max_steps "$STEPS" \
    --output_dir "$out/$v" "${extra[@]}" > "$out/$v.log" 2>&1
done
