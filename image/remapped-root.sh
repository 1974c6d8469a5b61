# Sourced by the scripts that start a session by hand. On an engine that remaps user namespaces
# (--userns-remap), prints the host uid:gid that root inside a container runs as, else nothing: the agent's folder
# and token must belong to that user, as the controller arranges for its own sessions.
remapped_root() {
  local options root
  options=$(docker info --format '{{json .SecurityOptions}}')
  case "$options" in *name=userns*) ;; *) return 0 ;; esac
  root=$(docker info --format '{{.DockerRootDir}}')
  [[ "${root##*/}" =~ ^([0-9]+)\.([0-9]+)$ ]] || { echo "remapped engine with data root $root: cannot tell its root" >&2; return 1; }
  echo "${BASH_REMATCH[1]}:${BASH_REMATCH[2]}"
}
