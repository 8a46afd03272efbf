#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 600), two at a time, from the committed seeds.
# Crashes land in fuzz/artifacts/<target>/; copy them into core's tests as regressions.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-600}"
targets=(npy_features npy_labels safetensors_features idx_images saved_head cifar_binary image_file pytorch_weights text_set tokenizer_json study_file)
run() {
  mkdir -p "corpus/$1"
  RUSTC_BOOTSTRAP=1 cargo fuzz run -O "$1" "corpus/$1" "seeds/$1" -- -max_total_time="$seconds" -print_final_stats=1 > "logs/$1.log" 2>&1 || echo "$1: FAILED (see fuzz/logs/$1.log)"
}
mkdir -p logs
for ((i = 0; i < ${#targets[@]}; i += 2)); do
  run "${targets[i]}" &
  [ $((i + 1)) -lt ${#targets[@]} ] && run "${targets[i + 1]}" &
  wait
done
grep -H "stat::number_of_executed_units\|ERROR\|panicked" logs/*.log || true
