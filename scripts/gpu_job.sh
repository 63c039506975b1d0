#!/usr/bin/env bash
# One-call GPU job (issue 19): benchmark + MLM pretraining + zero-shot probe, everything written to $OUT
# as it is made, so a crash or timeout in one part still returns the others.
#
#   python3 scripts/gpu_prepare.py        # here, once: .gpu/ (wheels + test-text-free corpus, xz)
#   bash scripts/gpu_job.sh               # on the GPU machine; OUT defaults to ./runs/gpu_out
#   GPU_JOB_TINY=1 bash scripts/gpu_job.sh   # CPU smoke test: tiny model, a few rows and steps (~2-4 min)
#   python3 scripts/gpu_transfer.py unpack "$OUT" runs/gpu_model   # here, after: the HF folder
#
# $OUT receives at most 7 files: job.log (this script's output, nvidia-smi), bench.json, pretrain.log,
# model_meta.tar (config.json, vocab.txt, tokenizer_config.json, pretrain_log.json) and the float16
# weights cut into model_fp16.safetensors.NNN parts of <= 15 MiB.
# Budget (GPU_JOB_LIMIT_S, default 570 s): setup ~15 s, benchmark until BENCH_END (130 s), pretraining
# until LIMIT - POST_S, then pack + probe + bench.json.
# Environment: GPU_JOB_DIR (default .gpu), GPU_JOB_WORK (scratch, default a new /tmp folder),
# GPU_JOB_BENCH (default "peak transformers keras_torch keras_jax"), GPU_JOB_PRECISIONS (bf16,fp32),
# GPU_JOB_BACKEND (pretraining backend: auto = JAX if it works, else torch).
set -u
START=$(date +%s)
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO" || exit 1
TINY=${GPU_JOB_TINY:-0}
OUT=${OUT:-$REPO/runs/gpu_out}
DATA=${GPU_JOB_DIR:-$REPO/.gpu}
WORK=${GPU_JOB_WORK:-$(mktemp -d /tmp/gpu_job.XXXXXX)}
BENCH_PARTS=${GPU_JOB_BENCH:-peak transformers keras_torch keras_jax}
PRECISIONS=${GPU_JOB_PRECISIONS:-bf16,fp32}
BACKEND_CHOICE=${GPU_JOB_BACKEND:-auto}
mkdir -p "$OUT" "$WORK"
if [ "$TINY" = 1 ]; then
    LIMIT=${GPU_JOB_LIMIT_S:-300}; BENCH_END=$((LIMIT / 2)); POST_S=70; SIZE=--tiny
    MODEL=(--layers 2 --hidden 64 --heads 2 --maxlen 64); BATCH=8; MAXLEN=64; SAVE_EVERY=10; LR=1e-3
    FIXED_STEPS=20; PIPE_SECONDS=2; PROBE_ARGS=(--limit 64 --no-reference)
else
    LIMIT=${GPU_JOB_LIMIT_S:-570}; BENCH_END=130; POST_S=60; SIZE=
    # 8 layers x 384 (6 heads, 1536): 22.7M parameters (8.1M of them the 21128 x 384 embedding),
    # 45 MB in float16 = 3 parts; bf16 compute, large batch, data-bound on the CPU side (see bench pipeline)
    MODEL=(--layers 8 --hidden 384 --heads 6 --intermediate 1536 --maxlen 128); BATCH=128; MAXLEN=128
    SAVE_EVERY=1000; LR=5e-4; FIXED_STEPS=; PIPE_SECONDS=8; PROBE_ARGS=()
fi
PRE_END=$((LIMIT - POST_S))
BENCH_JSONL=$WORK/bench.jsonl
PROBE_JSONL=$WORK/probe.jsonl
PRETRAIN_DIR=

now() { date +%s; }
elapsed() { echo $(($(now) - START)); }
say() { echo "[gpu_job +$(elapsed)s] $*"; }
# run_until DEADLINE_S MAX_S cmd...: the command under timeout, never past START + DEADLINE_S
run_until() {
    local deadline=$1 max=$2; shift 2
    local left=$((START + deadline - $(now)))
    [ "$left" -gt "$max" ] && left=$max
    if [ "$left" -lt 5 ]; then say "skipped (no time left): $*"; return 124; fi
    timeout -k 5 "$left" "$@"
}

collect() {
    local log=
    [ -n "$PRETRAIN_DIR" ] && log=$PRETRAIN_DIR/pretrain_log.json
    python3 scripts/gpu_bench.py collect "$BENCH_JSONL" "$PROBE_JSONL" --json "$OUT/bench.json" \
        ${log:+--pretrain-log "$log"} \
        --job-info "{\"tiny\": $TINY, \"limit_s\": $LIMIT, \"elapsed_s\": $(elapsed), \"pretrain_dir\": \"$PRETRAIN_DIR\"}" \
        || say "collect failed"
}

setup() {
    say "start $(date -u +%FT%TZ) on $(hostname); repo $REPO; OUT=$OUT; WORK=$WORK; tiny=$TINY; limit ${LIMIT}s"
    timeout 20 nvidia-smi || say "nvidia-smi: not available (no GPU: the job runs on the CPU)"
    python3 --version
    if ! python3 -c "import keras" 2>/dev/null; then
        if ls "$DATA"/whl/*.whl >/dev/null 2>&1; then
            say "installing $(ls "$DATA"/whl | tr '\n' ' ')"
            python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
                --target "$WORK/site" "$DATA"/whl/*.whl || say "pip install failed"
            export PYTHONPATH=$WORK/site${PYTHONPATH:+:$PYTHONPATH}
        else
            say "keras is missing and $DATA/whl has no wheels (run scripts/gpu_prepare.py here first)"
        fi
    fi
    python3 - <<'EOF' || say "version check failed"
from importlib import metadata
for name in ("numpy", "keras", "optree", "torch", "jax", "jaxlib", "transformers", "safetensors", "tensorflow", "jieba"):
    try:
        print(f"  {name} {metadata.version(name)}")
    except metadata.PackageNotFoundError:
        print(f"  {name}: not installed")
EOF
    mkdir -p "$WORK/corpus"
    CORPUS=()
    if [ "$TINY" = 1 ]; then
        cut -f1 data/sentiment/sentiment.train.data | head -4000 > "$WORK/corpus/tiny.txt"
        CORPUS=("$WORK/corpus/tiny.txt")
    else
        for xz in "$DATA"/corpus/*.xz; do
            [ -e "$xz" ] || continue
            local txt=$WORK/corpus/$(basename "${xz%.xz}")
            python3 -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], 'wb'))" \
                "$xz" "$txt" && CORPUS+=("$txt")
        done
    fi
    say "corpus: ${CORPUS[*]:-none} ($(cat "${CORPUS[@]}" 2>/dev/null | wc -lc | awk '{print $1 " documents, " $2 " bytes"}'))"
}

bench() {
    # CPU-side measurements in the background: the data rate (sets the step count) and whether JAX works
    if [ "${#CORPUS[@]}" -gt 0 ]; then
        KERAS_BACKEND=numpy timeout 60 python3 scripts/gpu_bench.py pipeline --corpus "${CORPUS[@]}" $SIZE \
            --batch-size "$BATCH" --maxlen "$MAXLEN" --seconds "$PIPE_SECONDS" --out "$BENCH_JSONL" &
    fi
    (XLA_PYTHON_CLIENT_PREALLOCATE=false KERAS_BACKEND=jax timeout 90 python3 -c "
import jax, keras
x = keras.ops.ones((64, 64))
print('jax preflight:', jax.__version__, jax.default_backend(), jax.devices(), float(keras.ops.sum(keras.ops.matmul(x, x))))
import few_shot.pretraining  # noqa: F401
" > "$WORK/jax_preflight.txt" 2>&1; echo "rc=$?" >> "$WORK/jax_preflight.txt") &
    local part
    for part in $BENCH_PARTS; do
        say "bench $part"
        case $part in
            peak) run_until "$BENCH_END" 30 python3 scripts/gpu_bench.py peak $SIZE --out "$BENCH_JSONL" ;;
            transformers) run_until "$BENCH_END" 40 python3 scripts/gpu_bench.py transformers $SIZE --out "$BENCH_JSONL" ;;
            keras_torch) KERAS_BACKEND=torch run_until "$BENCH_END" 50 python3 scripts/gpu_bench.py keras $SIZE \
                             --precisions "$PRECISIONS" --out "$BENCH_JSONL" ;;
            keras_jax) KERAS_BACKEND=jax run_until "$BENCH_END" 90 python3 scripts/gpu_bench.py keras $SIZE \
                           --precisions "$PRECISIONS" --out "$BENCH_JSONL" ;;
            *) say "unknown bench part $part" ;;
        esac
        say "bench $part: exit $?"
        collect
    done
    wait
    cat "$WORK/jax_preflight.txt" 2>/dev/null | tail -5
    collect
}

pretrain_once() {  # BACKEND DIR -> exit status; streams the log into $OUT/pretrain.log
    local backend=$1 dir=$2 steps max_min left rate
    left=$((START + PRE_END - $(now)))
    if [ "$left" -lt 60 ]; then say "no time left to pretrain on $backend (${left}s)"; return 124; fi
    # stop cleanly (checkpoint + export) ~15 s of imports before PRE_END; --steps from the measured data rate
    max_min=$(python3 -c "print(round(max(0.2, ($left - 15) / 60), 2))")
    if [ -n "$FIXED_STEPS" ]; then
        steps=$FIXED_STEPS
    else
        rate=$(python3 - "$BENCH_JSONL" <<'EOF'
import json, sys
rate = 150000.0  # tokens/s if the pipeline measurement is missing
try:
    for line in open(sys.argv[1], encoding="utf-8"):
        r = json.loads(line)
        if r.get("kind") == "pipeline" and r.get("tokens_per_s"):
            rate = r["tokens_per_s"]
except (OSError, ValueError):
    pass
print(rate)
EOF
)
        # 0.7: the rate inside fit (feeder threads share the interpreter lock with the training loop);
        # 60 s: imports, reading the corpus, the first (compiling) step, checkpoints
        steps=$(python3 -c "print(max(100, int($rate * 0.7 * max(30, $left - 60) / ($BATCH * $MAXLEN))))")
    fi
    say "pretrain on $backend: $steps steps of ${BATCH}x${MAXLEN} tokens, --max-minutes $max_min, output $dir"
    PRETRAIN_DIR=$dir
    (timeout 1000 nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 15 \
        > "$WORK/smi_$backend.csv" 2>/dev/null &
     echo $! > "$WORK/smi.pid")
    KERAS_BACKEND=$backend timeout -k 10 $((left + 45)) python3 -u scripts/pretrain_mlm.py \
        --corpus "${CORPUS[@]}" "${MODEL[@]}" --batch-size "$BATCH" --lr "$LR" --steps "$steps" \
        --save-every "$SAVE_EVERY" --mixed-precision --max-minutes "$max_min" --output "$dir" --overwrite \
        2>&1 | tr '\r' '\n' >> "$OUT/pretrain.log"
    local rc=${PIPESTATUS[0]}
    kill "$(cat "$WORK/smi.pid" 2>/dev/null)" 2>/dev/null
    { echo "--- nvidia-smi during pretraining ($backend)"; cat "$WORK/smi_$backend.csv" 2>/dev/null; } >> "$OUT/pretrain.log"
    say "pretrain on $backend: exit $rc"
    return "$rc"
}

model_folder() {  # the exported HF folder of the last pretraining, else its latest checkpoint
    local dir
    for dir in "$PRETRAIN_DIR/hf" "$PRETRAIN_DIR/checkpoint"; do
        [ -f "$dir/model.safetensors" ] && { echo "$dir"; return 0; }
    done
    return 1
}

pretrain() {
    if [ "${#CORPUS[@]}" -eq 0 ]; then say "no corpus: skipping pretraining"; return; fi
    local backend=$BACKEND_CHOICE
    if [ "$backend" = auto ]; then
        backend=torch
        if grep -q "^jax preflight:" "$WORK/jax_preflight.txt" 2>/dev/null && grep -q "^rc=0" "$WORK/jax_preflight.txt"; then
            if [ "$TINY" = 1 ] || grep -q "^jax preflight: [^ ]* gpu" "$WORK/jax_preflight.txt"; then backend=jax; fi
        fi
        # the benchmark ran few_shot's model on Keras/JAX: if every measurement there failed, so would this
        if [ "$backend" = jax ] && ! python3 - "$BENCH_JSONL" <<'EOF'
import json, sys
rows = []
try:
    rows = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8")]
except (OSError, ValueError):
    pass
jax = [r for r in rows if r.get("path") == "keras_jax"]
sys.exit(1 if jax and all("error" in r for r in jax) else 0)
EOF
        then
            backend=torch
            say "every Keras/JAX benchmark measurement failed: pretraining on torch"
        fi
        say "pretraining backend: $backend (JAX preflight: $(grep -h "preflight\|Error" "$WORK/jax_preflight.txt" 2>/dev/null | tail -1))"
    fi
    pretrain_once "$backend" "$WORK/pretrain_$backend"
    if ! model_folder >/dev/null && [ "$backend" = jax ]; then
        say "JAX pretraining left no model: falling back to torch"
        pretrain_once torch "$WORK/pretrain_torch"
    fi
}

finish() {
    local hf
    if hf=$(model_folder); then
        say "packing $hf"
        run_until $((LIMIT + 15)) 120 python3 scripts/gpu_transfer.py pack "$hf" "$OUT" \
            --extra "$PRETRAIN_DIR/pretrain_log.json" || say "pack failed"
        KERAS_BACKEND=torch run_until $((LIMIT - 8)) 60 python3 scripts/gpu_bench.py probe "$hf" "${PROBE_ARGS[@]}" \
            --out "$PROBE_JSONL" 2>&1 | grep -v "^$" | tail -20 | tee -a "$OUT/pretrain.log"
    else
        say "no pretrained model to return"
    fi
    collect
    # keep pretrain.log within what comes back (tqdm lines add up over a long run)
    if [ -f "$OUT/pretrain.log" ] && [ "$(stat -c %s "$OUT/pretrain.log")" -gt 4000000 ]; then
        { head -c 200000 "$OUT/pretrain.log"; echo; echo "[... trimmed ...]"; tail -c 3000000 "$OUT/pretrain.log"; } \
            > "$WORK/pretrain.log" && mv "$WORK/pretrain.log" "$OUT/pretrain.log"
    fi
    say "returned files:"
    ls -la "$OUT"
    local n big
    n=$(find "$OUT" -type f | wc -l)
    big=$(find "$OUT" -type f -size +16M | wc -l)
    [ "$n" -le 8 ] && [ "$big" -eq 0 ] || say "WARNING: $n files, $big over 16 MiB: more than comes back"
    say "done in $(elapsed)s"
}

main() {
    setup
    bench
    pretrain
    finish
}

main 2>&1 | tee -a "$OUT/job.log"
exit "${PIPESTATUS[0]}"
