# Sourced by scripts/setup and scripts/setup-infra: where an environment for one set of pins is
# built, so that clean clones on one machine (CI's) share it, as they share cargo's target dir.
#
# env_home <repo path> <name> <want>: prints the directory to build <repo path> in. A real
# directory at <repo path> (a developer's own) is used as it is. Otherwise <repo path> becomes a
# link to $FERRY_ENV_CACHE/<name>-<want> (default ~/.cache/ferry/envs), one entry per stamp;
# the caller holds a lock on it (fd 9) while it builds. FERRY_ENV_CACHE=off builds in the repo.
env_home() {
  local path="$1" name="$2" want="$3" cache="${FERRY_ENV_CACHE:-$HOME/.cache/ferry/envs}"
  if [[ "$cache" == off || ( -d "$path" && ! -L "$path" ) ]]; then
    echo "$path"
    return
  fi
  local home="$cache/$name-$want"
  mkdir -p "$cache"
  ln -sfn "$home" "$path"
  echo "$home"
}

# lock_env_home <home>: serializes builds of one cache entry across clones (fd 9); a build in
# the repo itself takes no lock.
lock_env_home() {
  local cache="${FERRY_ENV_CACHE:-$HOME/.cache/ferry/envs}"
  [[ "$1" == "$cache"/* ]] || return 0
  exec 9>"$1.lock"
  flock 9
}
