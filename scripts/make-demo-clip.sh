#!/usr/bin/env bash
# Generates agent/assets/demo-clip.flv, the clip the agent streams when a drone has no camera:
#
#   scripts/make-demo-clip.sh [OUTPUT]        (default: agent/assets/demo-clip.flv)
#
# 10 s of ffmpeg's built-in `testsrc2` pattern (moving, no fonts needed), H.264 (libx264,
# baseline, yuv420p) in FLV, 640x360 at 25 fps, a keyframe every 25 frames (1 s GOP, no
# scene-cut keyframes), video only, about 500 KB. The clip ships inside the agent binary, so
# keep it small. Installs nothing: needs ffmpeg with libx264 (Debian: `apt-get install ffmpeg`).
#
# Written through a pipe, like a live camera's output: ffmpeg cannot seek back to fill in the
# duration and file size, so `onMetaData` has neither and a looped clip does not claim to end
# after 10 s. Single-threaded and bitexact, so the same ffmpeg version makes the same bytes.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,11s/^# \{0,1\}//p' "$0"; }

case "${1:-}" in
  -h | --help) usage; exit 0 ;;
esac
out="${1:-agent/assets/demo-clip.flv}"

command -v ffmpeg >/dev/null || { echo "ffmpeg not found (Debian: apt-get install ffmpeg)" >&2; exit 1; }

ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i "testsrc2=size=640x360:rate=25:duration=10" \
  -c:v libx264 -profile:v baseline -pix_fmt yuv420p -threads 1 \
  -g 25 -keyint_min 25 -sc_threshold 0 \
  -b:v 380k -maxrate 420k -bufsize 420k \
  -an -map_metadata -1 -fflags +bitexact -flags:v +bitexact \
  -flvflags no_duration_filesize -f flv pipe:1 >"$out.tmp"
mv "$out.tmp" "$out"

echo "$out: $(stat -c %s "$out") bytes"
