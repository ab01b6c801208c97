#!/usr/bin/env bash
# The benchmarks that run on a lent GPU machine (see BENCHMARKS.md), one stage per call:
#
#   bash bench/device_session.sh check      # CUDA tests + CUDA latency (cudagraph and eager)
#                                           # of pruned ResNet-20s
#   bash bench/device_session.sh policies   # amc-compare on ResNet-20, equal budgets, 3 fine-tune
#                                           # seeds, searches re-scored (fine-tunes on the GPU)
#   bash bench/device_session.sh transfer   # train ResNet-56, apply the ResNet-20 actor, uniform
#   bash bench/device_session.sh correlation # search-vs-final correlation (16 fine-tunes)
#   bash bench/device_session.sh scale      # ResNet-50 per-image costs (the big-case projection);
#                                           # ResNet-20 episodes/min, 1-8 CPU workers and the GPU
#   bash bench/device_session.sh latency    # CUDA tests, latency table vs measurement (50 random
#                                           # policies: cudagraph b1, eager b256), latency-target
#                                           # searches against a measured budget (cudagraph)
#   bash bench/device_session.sh equal-latency # latency-target vs FLOPs-target search vs uniform,
#                                           # each cut to one measured latency (cudagraph b256),
#                                           # 3 fine-tune seeds, search seeds $SEEDS (default 0 1)
#   PART=agent bash bench/device_session.sh conditioned  # search once, apply many: train
#                                           # resnet32/56/110, one budget-conditioned agent over
#                                           # $CKPT + resnet32 (budgets 0.3:0.6);
#   PART=apply ...                          # then on resnet56 and resnet110 at 0.5 and 0.3:
#                                           # zero-shot transfer vs uniform, global, best of 50
#                                           # random (3 fine-tune seeds);
#   PART=scratch ...                        # from-scratch amc-ddpg searches on the same targets
#   PART=warm ...                           # warm starts (--init-actor) against them
#   PART=unseen ...                         # the actor at budgets 0.35 / 0.5 on $CKPT against
#                                           # a search at each budget
#
# The GPU image has torch but not gymnasium, stable-baselines3 or torch-pruning, and no network:
# .gpu/whl holds their wheels and .gpu/*.gz Debian's Fashion-MNIST files (both git-ignored, made
# by `make device-kit`). Needs $CKPT (default runs/s5/resnet20_e3.pt: carry it); the search whose
# policy the check, transfer and correlation stages use ($SEARCH) is run on this machine's CPU
# cores first when it is not there. Everything written goes into $OUT/<stage>.tgz (one file: the
# device tool returns at most 8).
set -euo pipefail
STAGE=${1:?stage: check, policies, transfer, scale, correlation, latency, equal-latency or conditioned}
OUT=${OUT:-/tmp/amc-device-out}
WORK=/tmp/amc-device/$STAGE
mkdir -p "$OUT" "$WORK"
trap 'tar czf "$OUT/$STAGE.tgz" -C "$WORK" .' EXIT
export PYTHONUNBUFFERED=1 WANDB_MODE=disabled AMC_BENCH_RESULTS=$WORK/results
[ -d /tmp/site ] || python3 -m pip install -q --no-index --no-deps --no-compile \
  --target /tmp/site .gpu/whl/*.whl
# The repository's folders as the one import package amc_agent (what pyproject's package-dir
# maps), linked inside it: `python -m` puts the working directory first on the path, so the
# folder amc_agent/ here is the package that is imported (the links are git-ignored).
for pair in env:amc_env agents:agents policies:policies cli:scripts; do
  ln -sfn "../${pair#*:}" "amc_agent/${pair%%:*}"
done
export PYTHONPATH=$PWD:/tmp/site AMC_DATA_ROOT=$PWD/data
mkdir -p data/FashionMNIST/raw
for f in .gpu/*.gz; do
  b=$(basename "$f" .gz)
  [ -f "data/FashionMNIST/raw/$b" ] || gunzip -c "$f" > "data/FashionMNIST/raw/$b"
done
PY=${PY:-python3}
CKPT=${CKPT:-runs/s5/resnet20_e3.pt}
SEARCH=runs/bench_search/amc-ddpg_s0  # where bench_search puts its amc-ddpg seed-0 search
[ -f "$CKPT" ] || { echo "device_session: $CKPT missing (carry it)" >&2; exit 2; }
need_search() {  # a 300-episode amc-ddpg search on $CKPT (bench_search's default folder)
  [ -f "$SEARCH/policy.json" ] || $PY -m bench.bench_search --checkpoint "$CKPT" \
    --agent amc-ddpg --episodes 300 --threads 16 --work "$(dirname "$SEARCH")" | tail -n 1
}
COMMON=(--budget 0.5 --round-to 1 --device cuda --wandb-mode disabled --no-progress)

case $STAGE in
check)
  need_search
  nvidia-smi -L | tee "$WORK/gpu.txt"
  $PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))" \
    | tee -a "$WORK/gpu.txt"
  $PY -m pytest -q -p no:cacheprovider tests/amc_env/test_cost.py tests/scripts/test_train_cli.py -k "not console_script" \
    2>&1 | tee "$WORK/pytest.txt"
  # CUDA-graph replay (the default on CUDA: what a deployment sees) and eager (launch-bound).
  $PY -m bench.bench_latency --checkpoint "$CKPT" --policy $SEARCH/policy.json \
    --device cuda
  $PY -m bench.bench_latency --checkpoint "$CKPT" --policy $SEARCH/policy.json \
    --device cuda --backend eager
  ;;
policies)
  # Fresh 300-episode searches (the split is the checkpoint's, winners re-scored on held-out
  # images), every heuristic completed to the budget, 3 fine-tune seeds per strategy. Bounded by
  # `timeout` so the stage is packed inside the device call's limit.
  timeout "${COMPARE_S:-540}" $PY -m bench.bench_compare --checkpoint "$CKPT" \
    --budget 0.5 --episodes 300 --finetune-seeds 3 --work "$WORK/compare" \
    -- --round-to 1 --device cuda 2>&1 | tail -n 40
  ;;
transfer)
  need_search
  $PY -m amc_agent.cli.train --model resnet56 --dataset fashion-mnist --epochs "${EPOCHS56:-10}" \
    --device cuda \
    --no-progress --out "$WORK/base_resnet56.pt"
  $PY -m amc_agent.cli.apply --policy $SEARCH/policy.json --checkpoint "$WORK/base_resnet56.pt" \
    --budget 0.5 --finetune-epochs 1 --device cuda --no-progress --out "$WORK/r56_transfer.pt" \
    | tee "$WORK/apply.json"
  $PY -m amc_agent.cli.compare --checkpoint "$WORK/base_resnet56.pt" --strategies uniform \
    --finetune-epochs 1 "${COMMON[@]}" --out "$WORK/compare56" 2>&1 | tail -n 20
  ;;
scale)
  # ResNet-50 per-image costs on the GPU (the big-case projection), then ResNet-20 and ResNet-56
  # episodes per minute on this machine's CPU cores with 1/2/4/8 local workers, and in one
  # process on the GPU.
  $PY -m bench.bench_scale --device cuda --batch 256
  R20=${R20:-runs/s5/resnet20_e3.pt}
  $PY -m bench.bench_workers --checkpoint "$R20" --episodes 60 --threads 8 \
    --variants 1-local,2-local,4-local,8-local --tag _cpu8 --work "$WORK/workers" \
    -- --rescore-top 0
  $PY -m bench.bench_workers --checkpoint "$R20" --episodes 60 --variants 1-local --tag _cuda \
    --work "$WORK/workers_cuda" -- --rescore-top 0 --device cuda
  # ResNet-56: throughput only, so one GPU epoch of training is enough weights.
  R56=${R56:-$WORK/resnet56_e1.pt}
  [ -f "$R56" ] || $PY -m amc_agent.cli.train --model resnet56 --dataset fashion-mnist \
    --epochs 1 --device cuda --no-progress --out "$R56"
  $PY -m bench.bench_workers --checkpoint "$R56" --episodes 30 --threads 8 \
    --variants 1-local,2-local,4-local,8-local --tag _cpu8 --work "$WORK/workers56" \
    -- --rescore-top 0
  $PY -m bench.bench_workers --checkpoint "$R56" --episodes 30 --variants 1-local --tag _cuda \
    --work "$WORK/workers56_cuda" -- --rescore-top 0 --device cuda
  ;;
correlation)
  need_search
  # Bounded by `timeout` so the stage ends (and is packed) inside the device call's limit.
  timeout "${CORR_S:-480}" $PY -m bench.bench_correlation --checkpoint "$CKPT" \
    --search $SEARCH --top 8 --spread 8 --finetune-epochs 1 --device cuda \
    2>&1 | tee "$WORK/correlation.log" | tail -n 40
  ;;
latency)
  # Each step bounded by `timeout` and allowed to fail alone, so one failure still brings back
  # the others' results.
  nvidia-smi -L | tee "$WORK/gpu.txt"
  timeout 60 $PY -m pytest -q -n0 -p no:cacheprovider tests/amc_env/test_cost.py -k cuda \
    2>&1 | tee "$WORK/pytest.txt" || true
  for setting in "cudagraph 1" "eager 256"; do
    read -r backend batch <<< "$setting"
    timeout "${PRED_S:-100}" $PY -m bench.bench_latency_predictor --checkpoint "$CKPT" \
      --device cuda --backend "$backend" --batch "$batch" --policies 50 \
      > "$WORK/predictor_${backend}_b$batch.log" 2>&1 || true
    tail -n 3 "$WORK/predictor_${backend}_b$batch.log"
  done
  IFS=, read -ra targets <<< "${TARGETS:-256:0.7,1:0.9}"  # batch:budget, in this order
  for t in "${targets[@]}"; do
    batch=${t%%:*} budget=${t#*:}
    timeout "${TARGET_S:-120}" $PY -m bench.bench_latency_target --checkpoint "$CKPT" \
      --device cuda --backend cudagraph --latency-batch "$batch" --budget "$budget" \
      --episodes 100 --work "$WORK/target_b$batch" > "$WORK/target_b$batch.log" 2>&1 || true
    tail -n 3 "$WORK/target_b$batch.log"
  done
  ;;
equal-latency)
  for seed in ${SEEDS:-0 1}; do
    timeout "${EQUAL_S:-240}" $PY -m bench.bench_equal_latency --checkpoint "$CKPT" \
      --device cuda --backend cudagraph --batch "${BATCH:-256}" --budget "${BUDGET:-0.8}" \
      --episodes "${EPISODES:-100}" --search-seed "$seed" --work "$WORK/eq_s$seed" \
      > "$WORK/eq_s$seed.log" 2>&1 || true
    tail -n 4 "$WORK/eq_s$seed.log"
  done
  ;;
conditioned)
  # Keeps its checkpoints and agent in runs/conditioned between parts (the working tree persists
  # on a warm machine; carry runs/conditioned to a fresh one). DEVICE, DATASET, EPOCHS,
  # EPISODES, RANDOM_EPISODES, FT_IMAGES (and PY) shrink it for a CPU smoke run.
  DEV=${DEVICE:-cuda}
  KEEP=runs/conditioned
  mkdir -p "$KEEP"
  case ${PART:?PART: agent, apply, scratch, warm or unseen} in
  agent)
    for m in resnet32 resnet56 resnet110; do
      [ -f "$KEEP/$m.pt" ] || $PY -m amc_agent.cli.train --model $m --dataset "${DATASET:-fashion-mnist}" \
        --epochs "${EPOCHS:-3}" --device "$DEV" --no-progress --out "$KEEP/$m.pt" | tail -n 1
    done
    rm -rf "$KEEP/agent"
    $PY -m amc_agent.cli.search --checkpoint "$CKPT" --checkpoint "$KEEP/resnet32.pt" \
      --budget 0.3:0.6 --episodes "${EPISODES:-300}" --device "$DEV" --wandb-mode disabled \
      --no-progress --out "$KEEP/agent" | tail -n 1
    cp -r "$KEEP/agent" "$WORK/agent"
    ;;
  apply|scratch)
    for m in resnet56 resnet110; do
      for b in 0.5 0.3; do
        if [ "$PART" = apply ]; then
          $PY -m bench.bench_compare --checkpoint "$KEEP/$m.pt" --budget $b \
            --episodes "${RANDOM_EPISODES:-50}" --variant zeroshot \
            --finetune-seeds 3 --strategies transfer,uniform,global,random \
            --work "$WORK/${m}_b$b" -- --transfer "$KEEP/agent" --device "$DEV" \
            --finetune-images "${FT_IMAGES:-10000}" 2>&1 | tail -n 2
        else
          $PY -m bench.bench_compare --checkpoint "$KEEP/$m.pt" --budget $b \
            --episodes "${EPISODES:-300}" --finetune-seeds 3 --strategies amc-ddpg \
            --variant scratch --work "$WORK/${m}_b${b}_scratch" -- --device "$DEV" \
            --finetune-images "${FT_IMAGES:-10000}" 2>&1 | tail -n 2
        fi
      done
    done
    ;;
  warm)
    # Reuses the scratch part's search where it ran on this machine (same seed and episodes).
    for m in resnet56 resnet110; do
      for b in 0.5 0.3; do
        scratch=$WORK/${m}_b${b}_scratch/search-amc-ddpg
        $PY -m bench.bench_warmstart --checkpoint "$KEEP/$m.pt" --actor "$KEEP/agent" \
          --budget $b --episodes "${EPISODES:-300}" --work "$WORK/warm_${m}_b$b" \
          $([ -d "$scratch" ] && echo --scratch "$scratch") -- --device "$DEV" | tail -n 1
      done
    done
    ;;
  unseen)
    for b in 0.35 0.5; do
      $PY -m bench.bench_compare --checkpoint "$CKPT" --budget $b --episodes "${EPISODES:-300}" \
        --finetune-seeds 3 --strategies amc-ddpg,transfer --variant unseen \
        --work "$WORK/unseen_b$b" -- --transfer "$KEEP/agent" --device "$DEV" \
        --finetune-images "${FT_IMAGES:-10000}" 2>&1 | tail -n 2
    done
    ;;
  esac
  ;;
*) echo "unknown stage $STAGE" >&2; exit 2 ;;
esac
