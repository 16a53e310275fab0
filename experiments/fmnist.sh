#!/usr/bin/env bash
# Fashion-MNIST experiments on the 2-core CPU (issue 6): teacher fine-tuning, then the
# Table 2 / Table 3 analogues over K = 256, 128, 64, 32 from the cached features.
#
#   bash experiments/fmnist.sh            # outputs under $OUT (default /work/exp/ck), report copied to results/fmnist/
#
# Sizes are cut to what this CPU finishes in about an hour: the first 30,000 training
# images, all 10,000 test images, 3 epochs of teacher fine-tuning.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/work/exp/ck}
COMMON=(recipe=fmnist_k32 data.limit_train=30000 output_root="$OUT")

# 1. Teacher: ResNet-18 (1 channel) fine-tuned with cross-entropy, augmentation on (crop, flip, jitter, cutout 8).
python subdistill/train.py "${COMMON[@]}" train.stage=finetune finetune.epochs=3 \
    data.num_workers=1 train.log_every=50 train.eval_every=100000 train.save_every=200
TEACHER=$(ls -d "$OUT"/teachers/fmnist_k32-*/ | head -n 1)

# 2. Validation (one torch thread: on a shared 2-core machine two threads ran 20x slower): probes on full / JL / PCA / learned for K = 256..32, seed spread over 3 extra R seeds.
OMP_NUM_THREADS=1 subdistill validate "${COMMON[@]}" teacher.source=checkpoint teacher.name="$TEACHER" teacher.finetune=false \
    validate.seeds=[0,1,2] run=fmnist_validate
mkdir -p results/fmnist
cp "$OUT"/fmnist_validate/{report.md,report.json,config.yaml,tsne.png,accuracy_vs_k.png} results/fmnist/
