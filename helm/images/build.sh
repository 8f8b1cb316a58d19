#!/usr/bin/env bash
# Build the researcher images and push them to ECR, skipping any tag ECR already holds.
#
#   REPOSITORY_URI=<account>.dkr.ecr.<region>.amazonaws.com/<name> CPU_TAG=cpu-<hash> \
#   GPU_TAG=gpu-<hash> ./build.sh            (after `docker login` to that registry)
#
# CodeBuild runs this (buildspec.yml) with the values the stack derives from this folder's
# content. Tags are immutable in the repository and name a content hash, so a tag already
# there is already this build: skipping it makes re-runs and rollbacks a quick no-op.
set -euo pipefail
: "${REPOSITORY_URI:?set REPOSITORY_URI}" "${CPU_TAG:?set CPU_TAG}" "${GPU_TAG:?set GPU_TAG}"
cd "$(dirname "$0")"
repository_name="${REPOSITORY_URI#*/}"

for kind in cpu gpu; do
  tag_variable="${kind^^}_TAG"
  tag="${!tag_variable}"
  image="$REPOSITORY_URI:$tag"
  if found=$(aws ecr describe-images --repository-name "$repository_name" --image-ids imageTag="$tag" 2>&1); then
    echo "== $image is already in ECR: not rebuilt"
    continue
  elif ! grep -q ImageNotFoundException <<<"$found"; then
    echo "$found" >&2
    exit 1
  fi
  echo "== building $image from Dockerfile.$kind"
  docker build --pull --platform linux/amd64 --file "Dockerfile.$kind" --tag "$image" .
  docker push "$image"
done
