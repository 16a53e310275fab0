#!/usr/bin/env bash
# Fashion-MNIST student comparison (issue 6): the subspace student against cross-entropy
# from scratch, Hinton KD and FitNets, the same fmnist_cnn and epochs, 3 seeds, last epoch.
#
#   bash experiments/fmnist_students.sh     # after experiments/fmnist.sh made the teacher
#
# The students learn from a transfer set of the first $N training images (the teacher saw
# all 60,000 with labels), which is what this 2-core CPU trains 12 students on in about
# an hour. The teacher's probes are validated on the same $N images, so the "teacher's
# JL probe" the students are held to saw exactly what they saw.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/work/exp/ck2}
N=${N:-10000}
EPOCHS=${EPOCHS:-6}
SEEDS=${SEEDS:-"0 1 2"}
K=${K:-32}
LR=${LR:-3e-3}  # 1e-3 left the students far from converged in a pilot (results/fmnist_students/README.md)
# Probes (validation and evaluate's fresh probes) take as many steps on N images as 5 epochs on 60,000.
PROBE_EPOCHS=${PROBE_EPOCHS:-$(( 5 * 60000 / N ))}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # a shared 2-core machine: two threads ran up to 20x slower
TEACHER=$(ls -d "$OUT"/teachers/fmnist_k32-*/ | head -n 1)
COMMON=(recipe=fmnist_k32 output_root="$OUT" teacher.source=checkpoint teacher.name="$TEACHER"
        teacher.finetune=false projection.k="$K" data.limit_train="$N" data.augment=false data.cutout=0
        data.num_workers=0 probe.epochs="$PROBE_EPOCHS")

# 1. The teacher's probes on the transfer set (full, JL, PCA, learned at K); the gate reads this.
subdistill validate "${COMMON[@]}" probe.ks="[$K]" validate.seeds=[0] run=fmnist_n${N}_k${K}_validate

# 2. Twelve students: every objective at every seed, the same architecture, data and epochs.
for seed in $SEEDS; do
  for objective in subspace ce kd fitnets; do
    run=fmnist_n${N}_k${K}_s${seed}_${objective}
    if [ -f "$OUT/$run/summary.json" ]; then echo "found $run"; continue; fi
    python subdistill/train.py "${COMMON[@]}" seed="$seed" train.objective="$objective" train.epochs="$EPOCHS" \
        train.lr="$LR" train.log_every=100 train.eval_every=100000 train.save_every=400 run="$run"
  done
  # 3. One table per seed (last-epoch weights: the runs keep only their final student).
  subdistill evaluate run=fmnist_n${N}_k${K}_s${seed}_subspace output_root="$OUT" repeats=3 threads=1 \
      baselines="[fmnist_n${N}_k${K}_s${seed}_ce,fmnist_n${N}_k${K}_s${seed}_kd,fmnist_n${N}_k${K}_s${seed}_fitnets]"
done

# 4. Mean and standard deviation over the seeds.
mkdir -p results/fmnist_students
python experiments/student_table.py "$OUT"/fmnist_n${N}_k${K}_s*_subspace/evaluation.json \
    --out results/fmnist_students/table.md
for seed in $SEEDS; do
  cp "$OUT/fmnist_n${N}_k${K}_s${seed}_subspace/evaluation.md" results/fmnist_students/evaluation_seed${seed}.md
done
cp "$OUT/fmnist_n${N}_k${K}_s0_subspace/config.yaml" results/fmnist_students/config_seed0_subspace.yaml
