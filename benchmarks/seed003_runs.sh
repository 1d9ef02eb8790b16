#!/usr/bin/env bash
# Seed 003's measured runs on Fashion-MNIST (docs/results.md, "Seed 003: attacks, fine-tuning and
# embedding views"): FGSM and PGD against the semantic hash and IWAN's classifier, a ResNet-18
# fine-tuned on the shipped sample next to frozen backbones, and PCA / t-SNE views. Everything goes
# into its own folder (database, feature cache, reports), so it leaves the user's store alone:
#
#     bash benchmarks/seed003_runs.sh [OUT [FASHION_MNIST_DIR]]    # default: seed003-runs/
#
# With FASHION_MNIST_DIR (the four original IDX files), the fine-tuned ResNet-18's features of all
# 70,000 images also go through benchmarks/index_sweep.py (query time against database size).
#
# Each command's wall time and CPU time (user + system, both cores counted) is printed after it,
# with the load average before the run: the machine may be shared.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${1:-seed003-runs}"
FULL="${2:-}"
[ -z "$FULL" ] || FULL="$(cd "$FULL" && pwd)"
mkdir -p "$OUT"
cd "$OUT"
export SEMRET_DATABASE_URL="sqlite:///$PWD/semret.sqlite3"
export SEMRET_CACHE_DIR="$PWD/cache"
SAMPLE="$ROOT/src/semret/data/fashion_mnist_sample"
SEMRET=(uv run --project "$ROOT" semret)
FROZEN=(--backbone efficientnet-lite0 --image-size 112)
TUNED=(--backbone resnet18 --weights "$PWD/resnet18-finetuned.pth" --image-size 64)

timed() {
  echo "\$ semret ${*}"
  echo "   load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  /usr/bin/time -f "   %e s wall, %U s user + %S s system CPU" "${SEMRET[@]}" "$@"
}

echo "== setup: $(nproc) cores, $(date -u +%FT%TZ)"
timed db upgrade
timed norms load --sample
timed collection import --dataset fashion-mnist --data-dir "$SAMPLE" --split test
timed collection import --dataset fashion-mnist --data-dir "$SAMPLE" --split train

echo "== 1. attacks: the semantic hash (EfficientNet-Lite0 features, 112 px)"
timed hash train --collection fashion-mnist-train "${FROZEN[@]}" --hierarchy fashion-mnist --out hash.pt
timed hash encode hash.pt --collection fashion-mnist-test "${FROZEN[@]}"
timed attack --collection fashion-mnist-test --model hash.pt "${FROZEN[@]}" --eps 0.001,0.003,0.01,0.03 \
  --queries 100 --out attack-hash

echo "== 1. attacks: IWAN's classifier (EfficientNet-Lite0 features, 112 px)"
timed classify --collection fashion-mnist-test --train-collection fashion-mnist-train "${FROZEN[@]}" \
  --save-classifier classifier.pt
timed iwan build --collection fashion-mnist-test
timed attack --collection fashion-mnist-test --model classifier.pt --eps 0.001,0.003,0.01,0.03 \
  --queries 100 --out attack-iwan

echo "== 2. ResNet-18 fine-tuned from scratch on the sample's 2,000 train images (seed 003: Adam, lr 1e-4, 10 epochs)"
timed backbone finetune --dataset fashion-mnist --data-dir "$SAMPLE" --backbone resnet18 --weights none \
  --image-size 64 --out resnet18-finetuned.pth

echo "== 2. retrieval on the sample: frozen EfficientNet-Lite0 (ImageNet), frozen ResNet-18 (random weights, seed 0), fine-tuned ResNet-18"
METHODS=(--methods exact,hash,hash-rerank,iwan --ks 1,10,100)
timed eval --dataset fashion-mnist --data-dir "$SAMPLE" "${FROZEN[@]}" "${METHODS[@]}" --out eval-efficientnet-lite0
timed eval --dataset fashion-mnist --data-dir "$SAMPLE" --backbone resnet18 --weights none --backbone-epochs 0 \
  --image-size 64 "${METHODS[@]}" --out eval-resnet18-random
timed eval --dataset fashion-mnist --data-dir "$SAMPLE" "${TUNED[@]}" "${METHODS[@]}" --out eval-resnet18-finetuned

echo "== 2. seed 003's own attack: FGSM and PGD against the fine-tuned ResNet-18's classifier (IWAN's words)"
timed classify --collection fashion-mnist-test --train-collection fashion-mnist-train "${TUNED[@]}" \
  --save-classifier classifier-resnet18.pt
timed iwan build --collection fashion-mnist-test
timed attack --collection fashion-mnist-test --model classifier-resnet18.pt --eps 0.001,0.003,0.01,0.03 \
  --queries 100 --out attack-iwan-resnet18

echo "== 2. PCA of the class-embedding outputs against retrieval (seed 002's further thoughts)"
echo "   load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/time -f "   %e s wall, %U s user + %S s system CPU" uv run --project "$ROOT" python \
  "$ROOT/benchmarks/class_embedding_pca.py" --collection fashion-mnist-test --model hash --hierarchy fashion-mnist

echo "== 2. embedding views of the test collection"
timed plot embeddings --collection fashion-mnist-test "${FROZEN[@]}" --method pca --out pca-efficientnet-lite0.png
timed plot embeddings --collection fashion-mnist-test "${FROZEN[@]}" --method tsne --out tsne-efficientnet-lite0.png
timed plot embeddings --collection fashion-mnist-test "${TUNED[@]}" --method pca --out pca-resnet18-finetuned.png
timed plot embeddings --collection fashion-mnist-test "${TUNED[@]}" --method tsne --out tsne-resnet18-finetuned.png
timed plot embeddings --collection fashion-mnist-test --model hash --method pca --out pca-hash-embeddings.png
timed plot embeddings --collection fashion-mnist-test --model hash --method tsne --out tsne-hash-embeddings.png
if [ -n "$FULL" ]; then
  echo "== 2. LSH against kNN on the fine-tuned ResNet-18's features of the whole of Fashion-MNIST"
  timed collection import --dataset fashion-mnist --data-dir "$FULL" --split train --name fashion-mnist-full-train
  timed collection import --dataset fashion-mnist --data-dir "$FULL" --split test --name fashion-mnist-full-test
  timed features extract --collection fashion-mnist-full-train "${TUNED[@]}" --out full-train-resnet18.npz
  timed features extract --collection fashion-mnist-full-test "${TUNED[@]}" --out full-test-resnet18.npz
  echo "   load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  /usr/bin/time -f "   %e s wall, %U s user + %S s system CPU" uv run --project "$ROOT" python \
    "$ROOT/benchmarks/index_sweep.py" --features full-train-resnet18.npz --query-features full-test-resnet18.npz \
    --kinds lsh,kmeans --out index-sweep-resnet18
fi
echo "== done: $(date -u +%FT%TZ)"
