#!/usr/bin/env bash
# Seeds the load_model fuzz corpus (git-ignored) with small real ONNX files, so that libFuzzer
# starts from valid model structure rather than from nothing.
# Usage: fuzz/seed.sh [MODELS_DIR]   (default: $TRTQ_MODELS, else target/models)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
models="${1:-${TRTQ_MODELS:-$here/../target/models}}"
corpus="$here/corpus/load_model"
mkdir -p "$corpus"
if [ ! -d "$models" ]; then
    echo "seed.sh: no models folder at $models (run scripts/fetch-models.sh); corpus left as is" >&2
    exit 0
fi
count=0
# Small files only: libFuzzer mutates whole inputs, and big ones slow every execution down.
while IFS= read -r -d '' file; do
    # Many backend test models are all called model.onnx: name each by its path.
    relative="${file#"$models"/}"
    cp "$file" "$corpus/${relative//\//_}"
    count=$((count + 1))
done < <(find "$models" -name '*.onnx' -size -256k -print0)
echo "seed.sh: copied $count .onnx files from $models into $corpus"
