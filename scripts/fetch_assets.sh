#!/usr/bin/env bash
# Fetch the data and model the tests and the quickstart use into DIR
# (default: ../shared/assets), from their public sources, and verify them.
#
#   bash scripts/fetch_assets.sh [DIR]
#   export SALR_ASSETS=DIR
#
# Sources (all MIT licensed):
#   GSM8K        github.com/openai/grade-school-math (grade_school_math/data/{train,test}.jsonl)
#   MMLU         hendrycks/test, data.tar (dev/ and test/ CSVs, 57 subjects)
#   stories260K  huggingface.co/karpathy/tinyllamas (stories260K/stories260K.bin, tok512.bin)
#   GPT-2        huggingface.co/openai-community/gpt2 (tokenizer.json)
set -euo pipefail
dir="${1:-../shared/assets}"
mkdir -p "$dir"/{gsm8k,stories260K,gpt2,mmlu}
cd "$dir"

fetch() { # url dest
  if [ -s "$2" ]; then echo "have $2"; return; fi
  echo "fetching $2"
  curl -fL --retry 3 -o "$2.part" "$1"
  mv "$2.part" "$2"
}

fetch https://raw.githubusercontent.com/openai/grade-school-math/master/grade_school_math/data/train.jsonl gsm8k/train.jsonl
fetch https://raw.githubusercontent.com/openai/grade-school-math/master/grade_school_math/data/test.jsonl gsm8k/test.jsonl
fetch https://huggingface.co/karpathy/tinyllamas/resolve/main/stories260K/stories260K.bin stories260K/stories260K.bin
fetch https://huggingface.co/karpathy/tinyllamas/resolve/main/stories260K/tok512.bin stories260K/tok512.bin
fetch https://huggingface.co/openai-community/gpt2/resolve/main/tokenizer.json gpt2/tokenizer.json
if [ ! -d mmlu/test ] || [ "$(ls mmlu/test | wc -l)" -ne 57 ]; then
  fetch https://people.eecs.berkeley.edu/~hendrycks/data.tar mmlu/data.tar
  tar -xf mmlu/data.tar -C mmlu --strip-components=1 data/dev data/test data/val
  rm mmlu/data.tar
fi

# Checksums of the files the tests pin (the same as the project's SHA256SUMS).
sha256sum -c - <<'SUMS'
3730d312f6e3440559ace48831e51066acaca737f6eabec99bccb9e4b3c39d14  gsm8k/test.jsonl
17f347dc51477c50d4efb83959dbb7c56297aba886e5544ee2aaed3024813465  gsm8k/train.jsonl
b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696  stories260K/stories260K.bin
037cb335abb25d1fa9e8ecae30ed2a3a8ace9302862ebcdc05d51a6bbb10c312  stories260K/tok512.bin
df6e222d37a6b4f350054433e95477958a0a9da2de91ffcdb62f9d87314b3210  gpt2/tokenizer.json
SUMS
echo "assets ready in $(pwd); export SALR_ASSETS=$(pwd)"
