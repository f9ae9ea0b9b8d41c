#!/usr/bin/env bash
# Dump the --help of the three nerfstudio 1.1.5 commands the trainer runs, from the real package,
# into tests/fake_nerfstudio/nerfstudio-1.1.5/. The fake ns-* tools read their option lists from
# these files and refuse any other option, so a misspelt or removed option fails the suite.
#
# Run it once per nerfstudio upgrade (a few minutes; CPU torch is enough for --help):
#   scripts/nerfstudio-help.sh
# nerfstudio itself goes in without its dependencies (its full set pulls ~2.6 GB of CUDA wheels
# and open3d); only what importing the CLI needs is added. numpy stays below 2 for rawpy and
# opencv 4.10; viser is nerfstudio's own pin. The versions that made the files are written into
# each file's header.
set -euo pipefail

NS_VERSION=1.1.5
repo=$(cd "$(dirname "$0")/.." && pwd)
out="$repo/tests/fake_nerfstudio/nerfstudio-$NS_VERSION"
python=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
[ -n "${KEEP_VENV:-}" ] && trap - EXIT && echo "venv kept in $work"

"$python" -m venv "$work/venv"
pip=("$work/venv/bin/pip" install --quiet --disable-pip-version-check)
"${pip[@]}" --no-deps "nerfstudio==$NS_VERSION"
# What `ns-* --help` imports (found by running it until it stopped failing on a missing module).
"${pip[@]}" "numpy<2" torch torchvision tyro rich jaxtyping pyyaml "opencv-python-headless==4.10.0.84" \
  "viser==0.2.7" tensorboard appdirs rawpy matplotlib pyquaternion fpsample pathos "gsplat==1.4.0" \
  pytorch_msssim tensorly "splines==0.3.0" "nerfacc==0.5.2" pillow scikit-image imageio mediapy plotly trimesh \
  xatlas h5py av pymeshlab requests
# open3d is imported at the top of the export and process-data modules but never used by --help,
# and its wheel needs system libraries (libusb) a build host may lack: a stand-in module will do.
site=$("$work/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
mkdir -p "$site/open3d"
echo '"""Stand-in for --help only."""' >"$site/open3d/__init__.py"

mkdir -p "$out"
versions=$("$work/venv/bin/pip" list --format=freeze 2>/dev/null | grep -E -i '^(nerfstudio|tyro|torch)==' | tr '\n' ' ')
dump() {
  local name=$1
  shift
  {
    echo "# $* --help  (made by scripts/nerfstudio-help.sh; $versions)"
    # COLUMNS=80: one column per box, so every option starts its own line.
    COLUMNS=80 PYTHONWARNINGS=ignore "$work/venv/bin/$1" "${@:2}" --help 2>"$work/stderr"
  } >"$out/$name.txt" || {
    cat "$work/stderr" >&2
    exit 1
  }
  echo "wrote $out/$name.txt ($(grep -c -- '--' "$out/$name.txt") lines with options)"
}
dump ns-train-splatfacto ns-train splatfacto
dump ns-process-data-images ns-process-data images
dump ns-export-gaussian-splat ns-export gaussian-splat
