#!/usr/bin/env bash
# Fashion-MNIST experiments on the 2-core CPU (issue 6): teacher fine-tuning, then the
# Table 2 / Table 3 analogues over K = 256, 128, 64, 32 from the cached features.
# experiments/fmnist_students.sh then distils the students from this teacher.
#
#   bash experiments/fmnist.sh            # outputs under $OUT (default /work/exp/ck2), report copied to results/fmnist/
#
# The teacher sees all 60,000 training images for 4 epochs without augmentation: on this
# CPU that is about 25 minutes, and it makes a teacher clearly stronger than the small
# students (an earlier 3 epochs over 30,000 heavily augmented images reached only 84.83%).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/work/exp/ck2}
COMMON=(recipe=fmnist_k32 output_root="$OUT" data.augment=false data.cutout=0)

# 1. Teacher: ResNet-18 (1 channel, random init) fine-tuned with cross-entropy, AdamW lr 1e-3.
python subdistill/train.py "${COMMON[@]}" train.stage=finetune finetune.epochs=4 \
    data.num_workers=1 train.log_every=50 train.eval_every=100000 train.save_every=300
TEACHER=$(ls -d "$OUT"/teachers/fmnist_k32-*/ | head -n 1)
mkdir -p results/fmnist
cp "$TEACHER/summary.json" results/fmnist/teacher_summary.json

# 2. Validation (one torch thread: on a shared 2-core machine two threads ran 20x slower): probes on full / JL /
#    PCA / learned for K = 256..32 on all 60,000 training images, seed spread over 3 extra R seeds.
OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} subdistill validate "${COMMON[@]}" teacher.source=checkpoint \
    teacher.name="$TEACHER" teacher.finetune=false validate.seeds=[0,1,2] run=fmnist_validate
cp "$OUT"/fmnist_validate/{report.md,report.json,config.yaml,tsne.png,accuracy_vs_k.png} results/fmnist/
